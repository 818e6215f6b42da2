# Forcing a replace of set 0 pins the replaced set-0 patch, never the
# transition patch itself, and never another set.
start_test 'force pins only the same set'
load_lp lp_b
load_lp lp_a
spawn_task reader
sleep_task 1001 cmdline_proc_show
load_lp_nowait lp_a_v0
sleep 2
echo 1 > /sys/kernel/livepatch/lp_a_v0/force
loop_until grep -q '^0$' /sys/kernel/livepatch/lp_a_v0/transition
loop_until test ! -e /sys/kernel/livepatch/lp_a
# lp_a was forced: it keeps its module reference for good
loop_until grep -q '^1$' /sys/module/lp_a/refcnt
disable_lp lp_b
unload_lp lp_b
disable_lp lp_a_v0
wake_task 1001
unload_lp lp_a_v0
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
livepatch: enabling patch 'lp_a_v0'
livepatch: 'lp_a_v0': initializing patching transition
livepatch: 'lp_a_v0': starting patching transition
livepatch: forcing remaining tasks to the patched state
livepatch: 'lp_a_v0': completing patching transition
livepatch: 'lp_a_v0': patching complete
livepatch: 'lp_b': initializing unpatching transition
livepatch: 'lp_b': starting unpatching transition
livepatch: 'lp_b': completing unpatching transition
livepatch: 'lp_b': unpatching complete
livepatch: 'lp_a_v0': initializing unpatching transition
livepatch: 'lp_a_v0': starting unpatching transition
livepatch: 'lp_a_v0': completing unpatching transition
livepatch: 'lp_a_v0': unpatching complete"
