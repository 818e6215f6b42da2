# Petr Mladek's counterexample for the replaceable variant (section 3.1),
# as replace sets see it: lp2 would patch funcA, which set 0 owns, so it is
# refused and the hazard cannot arise.
start_test 'the replaceable hazard is refused'
load_lp lp1
load_failing_mod lp2
load_lp lp3
grep lp /proc/cmdline > /dev/kmsg
grep lp /proc/meminfo > /dev/kmsg
disable_lp lp3
unload_lp lp3
disable_lp lp1
unload_lp lp1
check_result "livepatch: enabling patch 'lp1'
livepatch: 'lp1': initializing patching transition
livepatch: 'lp1': starting patching transition
livepatch: 'lp1': completing patching transition
livepatch: 'lp1': patching complete
livepatch: Livepatch patch (lp2) is not compatible with the already installed livepatches.
livepatch: enabling patch 'lp3'
livepatch: 'lp3': initializing patching transition
livepatch: 'lp3': starting patching transition
livepatch: 'lp3': completing patching transition
livepatch: 'lp3': patching complete
livepatch: lp1 patched funcA
livepatch: lp3 patched funcB
livepatch: 'lp3': initializing unpatching transition
livepatch: 'lp3': starting unpatching transition
livepatch: 'lp3': completing unpatching transition
livepatch: 'lp3': unpatching complete
livepatch: 'lp1': initializing unpatching transition
livepatch: 'lp1': starting unpatching transition
livepatch: 'lp1': completing unpatching transition
livepatch: 'lp1': unpatching complete"
