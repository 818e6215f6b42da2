# klp_module_coming()'s error path: a patch whose object cannot be set up
# for the module that is loading makes the loader refuse that module, and
# the patches before it that were applied to the module are reverted
# (klp_cleanup_module_patches_limit()); the patches after it were never
# applied and are left alone. Once that patch is gone, the module loads and
# the others apply.
start_test 'a patch that fails for a loading module'
load_lp test_klp_coming_ok
load_lp test_klp_coming_bad
load_lp test_klp_coming_late
load_failing_mod test_klp_coming_tgt
disable_lp test_klp_coming_bad
unload_lp test_klp_coming_bad
load_mod test_klp_coming_tgt
grep . /proc/test_klp_coming_tgt/tgt_show > /dev/kmsg
grep . /proc/test_klp_coming_tgt/tgt_work > /dev/kmsg
disable_lp test_klp_coming_late
unload_lp test_klp_coming_late
disable_lp test_klp_coming_ok
unload_lp test_klp_coming_ok
unload_mod test_klp_coming_tgt
check_result "% insmod test_modules/test_klp_coming_ok.ko
livepatch: enabling patch 'test_klp_coming_ok'
livepatch: 'test_klp_coming_ok': initializing patching transition
livepatch: 'test_klp_coming_ok': starting patching transition
livepatch: 'test_klp_coming_ok': completing patching transition
livepatch: 'test_klp_coming_ok': patching complete
% insmod test_modules/test_klp_coming_bad.ko
livepatch: enabling patch 'test_klp_coming_bad'
livepatch: 'test_klp_coming_bad': initializing patching transition
livepatch: 'test_klp_coming_bad': starting patching transition
livepatch: 'test_klp_coming_bad': completing patching transition
livepatch: 'test_klp_coming_bad': patching complete
% insmod test_modules/test_klp_coming_late.ko
livepatch: enabling patch 'test_klp_coming_late'
livepatch: 'test_klp_coming_late': initializing patching transition
livepatch: 'test_klp_coming_late': starting patching transition
livepatch: 'test_klp_coming_late': completing patching transition
livepatch: 'test_klp_coming_late': patching complete
% insmod test_modules/test_klp_coming_tgt.ko
livepatch: applying patch 'test_klp_coming_ok' to loading module 'test_klp_coming_tgt'
livepatch: symbol 'tgt_gone' not found in symbol table
livepatch: failed to initialize patch 'test_klp_coming_bad' for module 'test_klp_coming_tgt' (-22)
livepatch: patch 'test_klp_coming_bad' failed for module 'test_klp_coming_tgt', refusing to load module 'test_klp_coming_tgt'
livepatch: reverting patch 'test_klp_coming_ok' on unloading module 'test_klp_coming_tgt'
insmod: ERROR: could not insert module test_modules/test_klp_coming_tgt.ko: Invalid parameters
% echo 0 > /sys/kernel/livepatch/test_klp_coming_bad/enabled
livepatch: 'test_klp_coming_bad': initializing unpatching transition
livepatch: 'test_klp_coming_bad': starting unpatching transition
livepatch: 'test_klp_coming_bad': completing unpatching transition
livepatch: 'test_klp_coming_bad': unpatching complete
% rmmod test_klp_coming_bad
% insmod test_modules/test_klp_coming_tgt.ko
livepatch: applying patch 'test_klp_coming_ok' to loading module 'test_klp_coming_tgt'
livepatch: applying patch 'test_klp_coming_late' to loading module 'test_klp_coming_tgt'
test_klp_coming_tgt: test_klp_coming_tgt_init
test_klp_coming_ok: tgt_show patched
test_klp_coming_late: tgt_work patched
% echo 0 > /sys/kernel/livepatch/test_klp_coming_late/enabled
livepatch: 'test_klp_coming_late': initializing unpatching transition
livepatch: 'test_klp_coming_late': starting unpatching transition
livepatch: 'test_klp_coming_late': completing unpatching transition
livepatch: 'test_klp_coming_late': unpatching complete
% rmmod test_klp_coming_late
% echo 0 > /sys/kernel/livepatch/test_klp_coming_ok/enabled
livepatch: 'test_klp_coming_ok': initializing unpatching transition
livepatch: 'test_klp_coming_ok': starting unpatching transition
livepatch: 'test_klp_coming_ok': completing unpatching transition
livepatch: 'test_klp_coming_ok': unpatching complete
% rmmod test_klp_coming_ok
% rmmod test_klp_coming_tgt
test_klp_coming_tgt: test_klp_coming_tgt_exit"
