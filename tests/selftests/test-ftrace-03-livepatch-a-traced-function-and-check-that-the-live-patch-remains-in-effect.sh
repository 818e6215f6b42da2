# test-ftrace.sh, case 3: "livepatch a traced function and check that the live patch remains in effect"
start_test 'livepatch a traced function and check that the live patch remains in effect'
trace_function cmdline_proc_show
load_lp test_klp_livepatch
grep -q 'this has been live patched' /proc/cmdline
log 'livepatch: ok'
check_traced_functions cmdline_proc_show
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
