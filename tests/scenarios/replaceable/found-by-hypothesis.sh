# Found by the replaceable state machine (tests/test_state_machine.py) and
# shrunk by hypothesis: Petr's counterexample again. found_lp3 replaces the
# replaceable found_lp2 and gets a nop for meminfo_proc_show; when it
# completes, meminfo_proc_show falls back to found_lp1 for every task at
# once. 'klpsim run --check' reports:
#   per-task-consistency: completing the transition: init:1 did not switch,
#   but meminfo_proc_show changed from the original to
#   found_lp1:livepatch_meminfo_proc_show
start_test 'found by hypothesis'
insmod test_modules/found_lp1.ko
sleep 1
insmod test_modules/found_lp2.ko
sleep 1
insmod test_modules/found_lp3.ko
sleep 1
check_result "livepatch: enabling patch 'found_lp1'
livepatch: 'found_lp1': initializing patching transition
livepatch: 'found_lp1': starting patching transition
livepatch: 'found_lp1': completing patching transition
livepatch: 'found_lp1': patching complete
livepatch: enabling patch 'found_lp2'
livepatch: 'found_lp2': initializing patching transition
livepatch: 'found_lp2': starting patching transition
livepatch: 'found_lp2': completing patching transition
livepatch: 'found_lp2': patching complete
livepatch: enabling patch 'found_lp3'
livepatch: 'found_lp3': initializing patching transition
livepatch: 'found_lp3': starting patching transition
livepatch: 'found_lp3': completing patching transition
livepatch: 'found_lp3': patching complete"
