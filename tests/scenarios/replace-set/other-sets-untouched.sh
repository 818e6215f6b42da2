# Replacing set 0 leaves set 1 alone: no nops for it, no unpatch, no free.
# (A set-0 patch of meminfo_proc_show would be refused: set 1 owns it.)
start_test 'other sets are untouched'
load_lp lp_b
load_lp lp_a
grep lp_ /proc/cmdline > /dev/kmsg
grep lp_ /proc/meminfo > /dev/kmsg
grep lp_ /proc/version > /dev/kmsg
load_failing_mod test_klp_atomic_replace replace_set=0
load_lp lp_c
loop_until test ! -e /sys/kernel/livepatch/lp_a
ls /sys/kernel/livepatch
grep lp_ /proc/cmdline > /dev/kmsg
grep lp_ /proc/meminfo > /dev/kmsg
grep lp_ /proc/version > /dev/kmsg
check_sysfs_value lp_b enabled 1
unload_lp lp_a
disable_lp lp_c
unload_lp lp_c
disable_lp lp_b
unload_lp lp_b
check_result "livepatch: enabling patch 'lp_b'
livepatch: 'lp_b': initializing patching transition
livepatch: 'lp_b': starting patching transition
livepatch: 'lp_b': completing patching transition
livepatch: 'lp_b': patching complete
livepatch: enabling patch 'lp_a'
livepatch: 'lp_a': initializing patching transition
livepatch: 'lp_a': starting patching transition
livepatch: 'lp_a': completing patching transition
livepatch: 'lp_a': patching complete
livepatch: lp_a patched cmdline
livepatch: lp_b patched meminfo
% insmod test_modules/test_klp_atomic_replace.ko replace_set=0
livepatch: Livepatch patch (test_klp_atomic_replace) is not compatible with the already installed livepatches.
insmod: ERROR: could not insert module test_modules/test_klp_atomic_replace.ko: Invalid parameters
livepatch: enabling patch 'lp_c'
livepatch: 'lp_c': initializing patching transition
livepatch: 'lp_c': starting patching transition
livepatch: 'lp_c': completing patching transition
livepatch: 'lp_c': patching complete
livepatch: lp_b patched meminfo
livepatch: lp_c patched version
livepatch: 'lp_c': initializing unpatching transition
livepatch: 'lp_c': starting unpatching transition
livepatch: 'lp_c': completing unpatching transition
livepatch: 'lp_c': unpatching complete
livepatch: 'lp_b': initializing unpatching transition
livepatch: 'lp_b': starting unpatching transition
livepatch: 'lp_b': completing unpatching transition
livepatch: 'lp_b': unpatching complete"
