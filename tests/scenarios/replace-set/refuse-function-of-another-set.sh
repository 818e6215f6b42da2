# A set-1 patch may not touch cmdline_proc_show while set 0 patches it.
# Function identity: object + old_name + old_sympos, with 0 and 1 the same.
start_test 'refuse a function of another set'
load_lp lp_a
load_failing_mod lp_b_cmdline
ls /sys/kernel/livepatch
load_lp lp_b
grep lp_ /proc/cmdline > /dev/kmsg
grep lp_ /proc/meminfo > /dev/kmsg
disable_lp lp_b
unload_lp lp_b
disable_lp lp_a
unload_lp lp_a
check_result "livepatch: enabling patch 'lp_a'
livepatch: 'lp_a': initializing patching transition
livepatch: 'lp_a': starting patching transition
livepatch: 'lp_a': completing patching transition
livepatch: 'lp_a': patching complete
livepatch: Livepatch patch (lp_b_cmdline) is not compatible with the already installed livepatches.
livepatch: enabling patch 'lp_b'
livepatch: 'lp_b': initializing patching transition
livepatch: 'lp_b': starting patching transition
livepatch: 'lp_b': completing patching transition
livepatch: 'lp_b': patching complete
livepatch: lp_a patched cmdline
livepatch: lp_b patched meminfo
livepatch: 'lp_b': initializing unpatching transition
livepatch: 'lp_b': starting unpatching transition
livepatch: 'lp_b': completing unpatching transition
livepatch: 'lp_b': unpatching complete
livepatch: 'lp_a': initializing unpatching transition
livepatch: 'lp_a': starting unpatching transition
livepatch: 'lp_a': completing unpatching transition
livepatch: 'lp_a': unpatching complete"
