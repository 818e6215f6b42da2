# klp_module_coming() when the patch cannot be applied: with ftrace_enabled
# off, registering the patch's PERMANENT ftrace ops fails (-EBUSY), the
# patch is reported for the module and the module refused. Turned back on,
# the module loads patched.
start_test 'a patch that cannot be applied to a loading module'
load_lp test_klp_coming_ok
echo 0 > /proc/sys/kernel/ftrace_enabled
load_failing_mod test_klp_coming_tgt
echo 1 > /proc/sys/kernel/ftrace_enabled
load_mod test_klp_coming_tgt
grep . /proc/test_klp_coming_tgt/tgt_show > /dev/kmsg
disable_lp test_klp_coming_ok
unload_lp test_klp_coming_ok
unload_mod test_klp_coming_tgt
check_result "% insmod test_modules/test_klp_coming_ok.ko
livepatch: enabling patch 'test_klp_coming_ok'
livepatch: 'test_klp_coming_ok': initializing patching transition
livepatch: 'test_klp_coming_ok': starting patching transition
livepatch: 'test_klp_coming_ok': completing patching transition
livepatch: 'test_klp_coming_ok': patching complete
% insmod test_modules/test_klp_coming_tgt.ko
livepatch: applying patch 'test_klp_coming_ok' to loading module 'test_klp_coming_tgt'
livepatch: failed to register ftrace handler for function 'tgt_show' (-16)
livepatch: failed to apply patch 'test_klp_coming_ok' to module 'test_klp_coming_tgt' (-16)
livepatch: patch 'test_klp_coming_ok' failed for module 'test_klp_coming_tgt', refusing to load module 'test_klp_coming_tgt'
insmod: ERROR: could not insert module test_modules/test_klp_coming_tgt.ko: Device or resource busy
% insmod test_modules/test_klp_coming_tgt.ko
livepatch: applying patch 'test_klp_coming_ok' to loading module 'test_klp_coming_tgt'
test_klp_coming_tgt: test_klp_coming_tgt_init
test_klp_coming_ok: tgt_show patched
% echo 0 > /sys/kernel/livepatch/test_klp_coming_ok/enabled
livepatch: 'test_klp_coming_ok': initializing unpatching transition
livepatch: 'test_klp_coming_ok': starting unpatching transition
livepatch: 'test_klp_coming_ok': completing unpatching transition
livepatch: 'test_klp_coming_ok': unpatching complete
% rmmod test_klp_coming_ok
% rmmod test_klp_coming_tgt
test_klp_coming_tgt: test_klp_coming_tgt_exit"
