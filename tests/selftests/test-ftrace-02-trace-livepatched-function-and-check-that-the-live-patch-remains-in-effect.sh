# test-ftrace.sh, case 2: "trace livepatched function and check that the live patch remains in effect"
start_test 'trace livepatched function and check that the live patch remains in effect'
load_lp test_klp_livepatch
trace_function livepatch_cmdline_proc_show
grep -q 'this has been live patched' /proc/cmdline
log 'livepatch: ok'
check_traced_functions livepatch_cmdline_proc_show
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
check_result "% insmod test_modules/test_klp_livepatch.ko
livepatch: enabling patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': initializing patching transition
livepatch: 'test_klp_livepatch': starting patching transition
livepatch: 'test_klp_livepatch': completing patching transition
livepatch: 'test_klp_livepatch': patching complete
livepatch: ok
% echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
livepatch: 'test_klp_livepatch': initializing unpatching transition
livepatch: 'test_klp_livepatch': starting unpatching transition
livepatch: 'test_klp_livepatch': completing unpatching transition
livepatch: 'test_klp_livepatch': unpatching complete
% rmmod test_klp_livepatch"
