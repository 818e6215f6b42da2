# Petr Mladek's counterexample (replace-set-thread.md, 3.1). lp3 replaces the
# replaceable lp2, so it gets a nop for funcA: switched tasks run the
# original funcA during the transition. When lp3 completes, lp2 and the nop
# go away and funcA is suddenly lp1's again, for every task at once, with no
# transition of its own: a consistency-model violation ('klpsim run --check'
# reports it).
start_test 'replaceable: funcA handed back to lp1'
load_lp lp1
load_lp lp2
check_sysfs_value lp2 replaceable 1
grep funcA /proc/cmdline > /dev/kmsg
grep funcB /proc/meminfo > /dev/kmsg
# A task asleep in lp2's funcB holds lp3's transition.
spawn_task reader
sleep_task 1001 meminfo_proc_show
load_lp_nowait lp3
sleep 2
# The shell has switched: funcA is the original (lp3's nop), funcB is lp3's.
grep funcA /proc/cmdline > /dev/kmsg
grep funcB /proc/meminfo > /dev/kmsg
echo 0 > /sys/kernel/livepatch/lp3/replaceable
wake_task 1001
loop_until grep -q '^0$' /sys/kernel/livepatch/lp3/transition
# lp2 is gone; funcA is lp1's again.
loop_until test ! -e /sys/kernel/livepatch/lp2
grep funcA /proc/cmdline > /dev/kmsg
grep funcB /proc/meminfo > /dev/kmsg
unload_lp lp2
disable_lp lp3
unload_lp lp3
disable_lp lp1
unload_lp lp1
check_result "livepatch: enabling patch 'lp1'
livepatch: 'lp1': initializing patching transition
livepatch: 'lp1': starting patching transition
livepatch: 'lp1': completing patching transition
livepatch: 'lp1': patching complete
livepatch: enabling patch 'lp2'
livepatch: 'lp2': initializing patching transition
livepatch: 'lp2': starting patching transition
livepatch: 'lp2': completing patching transition
livepatch: 'lp2': patching complete
livepatch: lp2 patched funcA
livepatch: lp2 patched funcB
livepatch: enabling patch 'lp3'
livepatch: 'lp3': initializing patching transition
livepatch: 'lp3': starting patching transition
livepatch: lp3 patched funcB
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
