# RFC 3/4 + 4/4: a replace patch replaces only the patches whose
# replaceable attribute is set when it completes; the attribute is
# writable. Nothing is a conflict: a second patch of the same function
# just stacks on top.
start_test 'replace takes only replaceable patches'
load_lp test_klp_keep
load_lp test_klp_old
load_lp test_klp_flip
load_lp test_klp_same
check_sysfs_value test_klp_keep replaceable 0
check_sysfs_value test_klp_old replaceable 1
echo 0 > /sys/kernel/livepatch/test_klp_flip/replaceable
check_sysfs_value test_klp_flip replaceable 0
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
load_lp test_klp_new
loop_until test ! -e /sys/kernel/livepatch/test_klp_old
check_sysfs_value test_klp_keep enabled 1
check_sysfs_value test_klp_flip enabled 1
grep livepatch /proc/cmdline > /dev/kmsg
grep livepatch /proc/meminfo > /dev/kmsg
grep livepatch /proc/loadavg > /dev/kmsg
grep livepatch /proc/version > /dev/kmsg
unload_lp test_klp_old
disable_lp test_klp_new
unload_lp test_klp_new
disable_lp test_klp_same
unload_lp test_klp_same
grep livepatch /proc/cmdline > /dev/kmsg
disable_lp test_klp_flip
unload_lp test_klp_flip
disable_lp test_klp_keep
unload_lp test_klp_keep
check_result "% insmod test_modules/test_klp_keep.ko
livepatch: enabling patch 'test_klp_keep'
livepatch: 'test_klp_keep': initializing patching transition
livepatch: 'test_klp_keep': starting patching transition
livepatch: 'test_klp_keep': completing patching transition
livepatch: 'test_klp_keep': patching complete
% insmod test_modules/test_klp_old.ko
livepatch: enabling patch 'test_klp_old'
livepatch: 'test_klp_old': initializing patching transition
livepatch: 'test_klp_old': starting patching transition
livepatch: 'test_klp_old': completing patching transition
livepatch: 'test_klp_old': patching complete
% insmod test_modules/test_klp_flip.ko
livepatch: enabling patch 'test_klp_flip'
livepatch: 'test_klp_flip': initializing patching transition
livepatch: 'test_klp_flip': starting patching transition
livepatch: 'test_klp_flip': completing patching transition
livepatch: 'test_klp_flip': patching complete
% insmod test_modules/test_klp_same.ko
livepatch: enabling patch 'test_klp_same'
livepatch: 'test_klp_same': initializing patching transition
livepatch: 'test_klp_same': starting patching transition
livepatch: 'test_klp_same': completing patching transition
livepatch: 'test_klp_same': patching complete
livepatch: test_klp_same patched cmdline
livepatch: test_klp_old patched meminfo
livepatch: test_klp_flip patched loadavg
% insmod test_modules/test_klp_new.ko
livepatch: enabling patch 'test_klp_new'
livepatch: 'test_klp_new': initializing patching transition
livepatch: 'test_klp_new': starting patching transition
livepatch: 'test_klp_new': completing patching transition
livepatch: 'test_klp_new': patching complete
livepatch: test_klp_same patched cmdline
livepatch: test_klp_flip patched loadavg
livepatch: test_klp_new patched version
% rmmod test_klp_old
% echo 0 > /sys/kernel/livepatch/test_klp_new/enabled
livepatch: 'test_klp_new': initializing unpatching transition
livepatch: 'test_klp_new': starting unpatching transition
livepatch: 'test_klp_new': completing unpatching transition
livepatch: 'test_klp_new': unpatching complete
% rmmod test_klp_new
% echo 0 > /sys/kernel/livepatch/test_klp_same/enabled
livepatch: 'test_klp_same': initializing unpatching transition
livepatch: 'test_klp_same': starting unpatching transition
livepatch: 'test_klp_same': completing unpatching transition
livepatch: 'test_klp_same': unpatching complete
% rmmod test_klp_same
livepatch: test_klp_keep patched cmdline
% echo 0 > /sys/kernel/livepatch/test_klp_flip/enabled
livepatch: 'test_klp_flip': initializing unpatching transition
livepatch: 'test_klp_flip': starting unpatching transition
livepatch: 'test_klp_flip': completing unpatching transition
livepatch: 'test_klp_flip': unpatching complete
% rmmod test_klp_flip
% echo 0 > /sys/kernel/livepatch/test_klp_keep/enabled
livepatch: 'test_klp_keep': initializing unpatching transition
livepatch: 'test_klp_keep': starting unpatching transition
livepatch: 'test_klp_keep': completing unpatching transition
livepatch: 'test_klp_keep': unpatching complete
% rmmod test_klp_keep"
