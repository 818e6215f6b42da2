# Two sets may not use the same state id.
start_test 'refuse a state id of another set'
load_lp lp_state_a
load_failing_mod lp_state_b
disable_lp lp_state_a
unload_lp lp_state_a
load_lp lp_state_b
disable_lp lp_state_b
unload_lp lp_state_b
check_result "livepatch: enabling patch 'lp_state_a'
livepatch: 'lp_state_a': initializing patching transition
livepatch: 'lp_state_a': starting patching transition
livepatch: 'lp_state_a': completing patching transition
livepatch: 'lp_state_a': patching complete
livepatch: Livepatch patch (lp_state_b) is not compatible with the already installed livepatches.
livepatch: 'lp_state_a': initializing unpatching transition
livepatch: 'lp_state_a': starting unpatching transition
livepatch: 'lp_state_a': completing unpatching transition
livepatch: 'lp_state_a': unpatching complete
livepatch: enabling patch 'lp_state_b'
livepatch: 'lp_state_b': initializing patching transition
livepatch: 'lp_state_b': starting patching transition
livepatch: 'lp_state_b': completing patching transition
livepatch: 'lp_state_b': patching complete
livepatch: 'lp_state_b': initializing unpatching transition
livepatch: 'lp_state_b': starting unpatching transition
livepatch: 'lp_state_b': completing unpatching transition
livepatch: 'lp_state_b': unpatching complete"
