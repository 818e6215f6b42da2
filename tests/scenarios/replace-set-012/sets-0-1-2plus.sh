# Song Liu's 0 / 1 / 2+ scheme: set 0 replaces nothing (and gets no nops),
# set 1 replaces every patch, 2 and up replace their own set. There is no
# conflict check: two sets may patch the same function, the newer on top.
start_test 'replace sets 0, 1 and 2+'
load_lp test_klp_set0_a
load_lp test_klp_set0_b
load_lp test_klp_set2_a
load_lp test_klp_set3
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
# set 2 again: replaces test_klp_set2_a only; set 3 still patches meminfo.
load_lp test_klp_set2_b
loop_until test ! -e /sys/kernel/livepatch/test_klp_set2_a
check_sysfs_value test_klp_set0_a enabled 1
check_sysfs_value test_klp_set0_b enabled 1
check_sysfs_value test_klp_set3 enabled 1
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
# set 1 replaces them all.
load_lp test_klp_set1
loop_until test ! -e /sys/kernel/livepatch/test_klp_set3
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/uptime > /dev/kmsg
unload_lp test_klp_set0_a
unload_lp test_klp_set0_b
unload_lp test_klp_set2_a
unload_lp test_klp_set2_b
unload_lp test_klp_set3
disable_lp test_klp_set1
unload_lp test_klp_set1
check_result "% insmod test_modules/test_klp_set0_a.ko
livepatch: enabling patch 'test_klp_set0_a'
livepatch: 'test_klp_set0_a': initializing patching transition
livepatch: 'test_klp_set0_a': starting patching transition
livepatch: 'test_klp_set0_a': completing patching transition
livepatch: 'test_klp_set0_a': patching complete
% insmod test_modules/test_klp_set0_b.ko
livepatch: enabling patch 'test_klp_set0_b'
livepatch: 'test_klp_set0_b': initializing patching transition
livepatch: 'test_klp_set0_b': starting patching transition
livepatch: 'test_klp_set0_b': completing patching transition
livepatch: 'test_klp_set0_b': patching complete
% insmod test_modules/test_klp_set2_a.ko
livepatch: enabling patch 'test_klp_set2_a'
livepatch: 'test_klp_set2_a': initializing patching transition
livepatch: 'test_klp_set2_a': starting patching transition
livepatch: 'test_klp_set2_a': completing patching transition
livepatch: 'test_klp_set2_a': patching complete
% insmod test_modules/test_klp_set3.ko
livepatch: enabling patch 'test_klp_set3'
livepatch: 'test_klp_set3': initializing patching transition
livepatch: 'test_klp_set3': starting patching transition
livepatch: 'test_klp_set3': completing patching transition
livepatch: 'test_klp_set3': patching complete
livepatch: test_klp_set0_b patched cmdline
livepatch: test_klp_set3 patched meminfo
% insmod test_modules/test_klp_set2_b.ko
livepatch: enabling patch 'test_klp_set2_b'
livepatch: 'test_klp_set2_b': initializing patching transition
livepatch: 'test_klp_set2_b': starting patching transition
livepatch: 'test_klp_set2_b': completing patching transition
livepatch: 'test_klp_set2_b': patching complete
livepatch: test_klp_set3 patched meminfo
livepatch: test_klp_set2_b patched loadavg
% insmod test_modules/test_klp_set1.ko
livepatch: enabling patch 'test_klp_set1'
livepatch: 'test_klp_set1': initializing patching transition
livepatch: 'test_klp_set1': starting patching transition
livepatch: 'test_klp_set1': completing patching transition
livepatch: 'test_klp_set1': patching complete
livepatch: test_klp_set1 patched uptime
% rmmod test_klp_set0_a
% rmmod test_klp_set0_b
% rmmod test_klp_set2_a
% rmmod test_klp_set2_b
% rmmod test_klp_set3
% echo 0 > /sys/kernel/livepatch/test_klp_set1/enabled
livepatch: 'test_klp_set1': initializing unpatching transition
livepatch: 'test_klp_set1': starting unpatching transition
livepatch: 'test_klp_set1': completing unpatching transition
livepatch: 'test_klp_set1': unpatching complete
% rmmod test_klp_set1"
