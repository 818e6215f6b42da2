# Forcing a replace of set 0 pins the replaced set-0 patch, never the
# transition patch itself, and never another set. The busy module's worker
# sleeps in busymod_work_func, which test_klp_callbacks_demo (set 0)
# patches, so its transition stalls until it is forced.
start_test 'force pins only the same set'
load_lp lp_b
load_lp lp_a
load_mod test_klp_callbacks_busy block_transition=Y
load_lp_nowait test_klp_callbacks_demo
echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/force
loop_until grep -q '^0$' /sys/kernel/livepatch/test_klp_callbacks_demo/transition
loop_until test ! -e /sys/kernel/livepatch/lp_a
# lp_a was forced: it keeps its module reference for good
loop_until grep -q '^1$' /sys/module/lp_a/refcnt
disable_lp lp_b
unload_lp lp_b
disable_lp test_klp_callbacks_demo
unload_lp test_klp_callbacks_demo
unload_mod test_klp_callbacks_busy
check_result "livepatch: enabling patch 'lp_b'
livepatch: 'lp_b': initializing patching transition
livepatch: 'lp_b': starting patching transition
livepatch: 'lp_b': completing patching transition
livepatch: 'lp_b': patching complete
livepatch: enabling patch 'lp_a'
livepatch: 'lp_a': initializing patching transition
livepatch: 'lp_a': starting patching transition
livepatch: 'lp_a': completing patching transition
livepatch: 'lp_a': patching complete
% insmod test_modules/test_klp_callbacks_busy.ko block_transition=Y
test_klp_callbacks_busy: test_klp_callbacks_busy_init
test_klp_callbacks_busy: busymod_work_func enter
% insmod test_modules/test_klp_callbacks_demo.ko
livepatch: enabling patch 'test_klp_callbacks_demo'
livepatch: 'test_klp_callbacks_demo': initializing patching transition
test_klp_callbacks_demo: pre_patch_callback: vmlinux
test_klp_callbacks_demo: pre_patch_callback: test_klp_callbacks_busy -> [MODULE_STATE_LIVE] Normal state
livepatch: 'test_klp_callbacks_demo': starting patching transition
livepatch: forcing remaining tasks to the patched state
livepatch: 'test_klp_callbacks_demo': completing patching transition
test_klp_callbacks_demo: post_patch_callback: vmlinux
test_klp_callbacks_demo: post_patch_callback: test_klp_callbacks_busy -> [MODULE_STATE_LIVE] Normal state
livepatch: 'test_klp_callbacks_demo': patching complete
livepatch: 'lp_b': initializing unpatching transition
livepatch: 'lp_b': starting unpatching transition
livepatch: 'lp_b': completing unpatching transition
livepatch: 'lp_b': unpatching complete
% echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
livepatch: 'test_klp_callbacks_demo': initializing unpatching transition
test_klp_callbacks_demo: pre_unpatch_callback: vmlinux
test_klp_callbacks_demo: pre_unpatch_callback: test_klp_callbacks_busy -> [MODULE_STATE_LIVE] Normal state
livepatch: 'test_klp_callbacks_demo': starting unpatching transition
livepatch: 'test_klp_callbacks_demo': completing unpatching transition
test_klp_callbacks_demo: post_unpatch_callback: vmlinux
test_klp_callbacks_demo: post_unpatch_callback: test_klp_callbacks_busy -> [MODULE_STATE_LIVE] Normal state
livepatch: 'test_klp_callbacks_demo': unpatching complete
% rmmod test_klp_callbacks_demo
% rmmod test_klp_callbacks_busy
test_klp_callbacks_busy: busymod_work_func exit
test_klp_callbacks_busy: test_klp_callbacks_busy_exit"
