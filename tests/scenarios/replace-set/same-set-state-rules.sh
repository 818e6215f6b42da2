# Within a set every patch is cumulative: it must carry the set's states at
# the same or a higher version. Without states, a downgrade is allowed.
start_test 'state rules within a set'
load_lp lp_state_a
load_failing_mod lp_state_a_none
load_failing_mod lp_state_a_old
disable_lp lp_state_a
unload_lp lp_state_a
load_lp lp_a
load_lp lp_a_v0
grep lp_ /proc/cmdline > /dev/kmsg
unload_lp lp_a
disable_lp lp_a_v0
unload_lp lp_a_v0
check_result "livepatch: enabling patch 'lp_state_a'
livepatch: 'lp_state_a': initializing patching transition
livepatch: 'lp_state_a': starting patching transition
livepatch: 'lp_state_a': completing patching transition
livepatch: 'lp_state_a': patching complete
livepatch: Livepatch patch (lp_state_a_none) is not compatible with the already installed livepatches.
livepatch: Livepatch patch (lp_state_a_old) is not compatible with the already installed livepatches.
livepatch: 'lp_state_a': initializing unpatching transition
livepatch: 'lp_state_a': starting unpatching transition
livepatch: 'lp_state_a': completing unpatching transition
livepatch: 'lp_state_a': unpatching complete
livepatch: enabling patch 'lp_a'
livepatch: 'lp_a': initializing patching transition
livepatch: 'lp_a': starting patching transition
livepatch: 'lp_a': completing patching transition
livepatch: 'lp_a': patching complete
livepatch: enabling patch 'lp_a_v0'
livepatch: 'lp_a_v0': initializing patching transition
livepatch: 'lp_a_v0': starting patching transition
livepatch: 'lp_a_v0': completing patching transition
livepatch: 'lp_a_v0': patching complete
livepatch: lp_a_v0 patched cmdline
livepatch: 'lp_a_v0': initializing unpatching transition
livepatch: 'lp_a_v0': starting unpatching transition
livepatch: 'lp_a_v0': completing unpatching transition
livepatch: 'lp_a_v0': unpatching complete"
