# v2 4/4: "sysfs test replace_set 1234" -- a read-only %u attribute; neither
# replace nor stack_order exist any more.
start_test 'sysfs test replace_set 1234'
load_lp test_klp_atomic_replace replace_set=1234
check_sysfs_rights test_klp_atomic_replace replace_set -r--r--r--
check_sysfs_value test_klp_atomic_replace replace_set 1234
loop_until test ! -e /sys/kernel/livepatch/test_klp_atomic_replace/replace
loop_until test ! -e /sys/kernel/livepatch/test_klp_atomic_replace/stack_order
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
check_result "% insmod test_modules/test_klp_atomic_replace.ko replace_set=1234
livepatch: enabling patch 'test_klp_atomic_replace'
livepatch: 'test_klp_atomic_replace': initializing patching transition
livepatch: 'test_klp_atomic_replace': starting patching transition
livepatch: 'test_klp_atomic_replace': completing patching transition
livepatch: 'test_klp_atomic_replace': patching complete
% echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
livepatch: 'test_klp_atomic_replace': initializing unpatching transition
livepatch: 'test_klp_atomic_replace': starting unpatching transition
livepatch: 'test_klp_atomic_replace': completing unpatching transition
livepatch: 'test_klp_atomic_replace': unpatching complete
% rmmod test_klp_atomic_replace"
