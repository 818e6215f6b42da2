# test-state.sh, case 4: "incompatible cumulative livepatches"
start_test 'incompatible cumulative livepatches'
load_lp test_klp_state2
load_failing_mod test_klp_state
disable_lp test_klp_state2
unload_lp test_klp_state2
check_result "% insmod test_modules/test_klp_state2.ko
livepatch: enabling patch 'test_klp_state2'
livepatch: 'test_klp_state2': initializing patching transition
test_klp_state2: pre_patch_callback: vmlinux
test_klp_state2: allocate_loglevel_state: allocating space to store console_loglevel
livepatch: 'test_klp_state2': starting patching transition
livepatch: 'test_klp_state2': completing patching transition
test_klp_state2: post_patch_callback: vmlinux
test_klp_state2: fix_console_loglevel: fixing console_loglevel
livepatch: 'test_klp_state2': patching complete
% insmod test_modules/test_klp_state.ko
livepatch: Livepatch patch (test_klp_state) is not compatible with the already installed livepatches.
insmod: ERROR: could not insert module test_modules/test_klp_state.ko: Invalid parameters
% echo 0 > /sys/kernel/livepatch/test_klp_state2/enabled
livepatch: 'test_klp_state2': initializing unpatching transition
test_klp_state2: pre_unpatch_callback: vmlinux
test_klp_state2: restore_console_loglevel: restoring console_loglevel
livepatch: 'test_klp_state2': starting unpatching transition
livepatch: 'test_klp_state2': completing unpatching transition
test_klp_state2: post_unpatch_callback: vmlinux
test_klp_state2: free_loglevel_state: freeing space for the stored console_loglevel
livepatch: 'test_klp_state2': unpatching complete
% rmmod test_klp_state2"
