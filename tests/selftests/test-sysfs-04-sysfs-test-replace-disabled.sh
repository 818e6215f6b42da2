# test-sysfs.sh, case 4: "sysfs test replace disabled"
start_test 'sysfs test replace disabled'
load_lp test_klp_atomic_replace replace=0
check_sysfs_rights test_klp_atomic_replace replace -r--r--r--
check_sysfs_value test_klp_atomic_replace replace 0
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
check_result "% insmod test_modules/test_klp_atomic_replace.ko replace=0
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
