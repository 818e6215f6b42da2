# Yafang Shao's replace-tag draft: replace is a u32 tag. A tagged patch
# replaces the older patches of its own tag and every untagged (tag 0)
# patch; other tags stay. klp_add_nops() was left alone, so the new patch
# still carries nops for every older patch: while its transition runs, a
# task that has switched runs the original of a function another tag
# patches, and gets that tag's code back, with no transition, when the new
# patch completes ('klpsim run --check' reports it).
start_test 'replace tags'
load_lp test_klp_tag1 replace=1
load_lp test_klp_tag0
check_sysfs_value test_klp_tag1 replace 1
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/version > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
# A task asleep in version_proc_show holds tag 2's transition.
spawn_task reader
sleep_task 1001 version_proc_show
load_lp_nowait test_klp_tag2 replace=2
sleep 2
# The shell has switched: tag 0's cmdline and tag 1's meminfo are nops now.
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/version > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
wake_task 1001
loop_until grep -q '^0$' /sys/kernel/livepatch/test_klp_tag2/transition
loop_until test ! -e /sys/kernel/livepatch/test_klp_tag0
# Tag 0 is gone; tag 1 is back.
check_sysfs_value test_klp_tag1 enabled 1
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/version > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
# A newer tag 1 replaces tag 1 only.
load_lp test_klp_tag1_v2 replace=1
loop_until test ! -e /sys/kernel/livepatch/test_klp_tag1
check_sysfs_value test_klp_tag2 enabled 1
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/version > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
unload_lp test_klp_tag0
unload_lp test_klp_tag1
disable_lp test_klp_tag1_v2
unload_lp test_klp_tag1_v2
disable_lp test_klp_tag2
unload_lp test_klp_tag2
check_result "% insmod test_modules/test_klp_tag1.ko replace=1
livepatch: enabling patch 'test_klp_tag1'
livepatch: 'test_klp_tag1': initializing patching transition
livepatch: 'test_klp_tag1': starting patching transition
livepatch: 'test_klp_tag1': completing patching transition
livepatch: 'test_klp_tag1': patching complete
% insmod test_modules/test_klp_tag0.ko
livepatch: enabling patch 'test_klp_tag0'
livepatch: 'test_klp_tag0': initializing patching transition
livepatch: 'test_klp_tag0': starting patching transition
livepatch: 'test_klp_tag0': completing patching transition
livepatch: 'test_klp_tag0': patching complete
livepatch: test_klp_tag0 patched cmdline
livepatch: test_klp_tag1 patched meminfo
% insmod test_modules/test_klp_tag2.ko replace=2
livepatch: enabling patch 'test_klp_tag2'
livepatch: 'test_klp_tag2': initializing patching transition
livepatch: 'test_klp_tag2': starting patching transition
livepatch: test_klp_tag2 patched version
livepatch: 'test_klp_tag2': completing patching transition
livepatch: 'test_klp_tag2': patching complete
livepatch: test_klp_tag1 patched meminfo
livepatch: test_klp_tag2 patched version
% insmod test_modules/test_klp_tag1_v2.ko replace=1
livepatch: enabling patch 'test_klp_tag1_v2'
livepatch: 'test_klp_tag1_v2': initializing patching transition
livepatch: 'test_klp_tag1_v2': starting patching transition
livepatch: 'test_klp_tag1_v2': completing patching transition
livepatch: 'test_klp_tag1_v2': patching complete
livepatch: test_klp_tag2 patched version
livepatch: test_klp_tag1_v2 patched loadavg
% rmmod test_klp_tag0
% rmmod test_klp_tag1
% echo 0 > /sys/kernel/livepatch/test_klp_tag1_v2/enabled
livepatch: 'test_klp_tag1_v2': initializing unpatching transition
livepatch: 'test_klp_tag1_v2': starting unpatching transition
livepatch: 'test_klp_tag1_v2': completing unpatching transition
livepatch: 'test_klp_tag1_v2': unpatching complete
% rmmod test_klp_tag1_v2
% echo 0 > /sys/kernel/livepatch/test_klp_tag2/enabled
livepatch: 'test_klp_tag2': initializing unpatching transition
livepatch: 'test_klp_tag2': starting unpatching transition
livepatch: 'test_klp_tag2': completing unpatching transition
livepatch: 'test_klp_tag2': unpatching complete
% rmmod test_klp_tag2"
