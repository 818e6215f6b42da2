# test-sysfs.sh, case 1: "sysfs test"
start_test 'sysfs test'
load_lp test_klp_livepatch
check_sysfs_rights test_klp_livepatch '' drwxr-xr-x
check_sysfs_rights test_klp_livepatch enabled -rw-r--r--
check_sysfs_value test_klp_livepatch enabled 1
check_sysfs_rights test_klp_livepatch force --w-------
check_sysfs_rights test_klp_livepatch replace -r--r--r--
check_sysfs_rights test_klp_livepatch stack_order -r--r--r--
check_sysfs_value test_klp_livepatch stack_order 1
check_sysfs_rights test_klp_livepatch transition -r--r--r--
check_sysfs_value test_klp_livepatch transition 0
check_sysfs_rights test_klp_livepatch vmlinux/patched -r--r--r--
check_sysfs_value test_klp_livepatch vmlinux/patched 1
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
check_result "% insmod test_modules/test_klp_livepatch.ko
livepatch: enabling patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': initializing patching transition
livepatch: 'test_klp_livepatch': starting patching transition
livepatch: 'test_klp_livepatch': completing patching transition
livepatch: 'test_klp_livepatch': patching complete
% echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
livepatch: 'test_klp_livepatch': initializing unpatching transition
livepatch: 'test_klp_livepatch': starting unpatching transition
livepatch: 'test_klp_livepatch': completing unpatching transition
livepatch: 'test_klp_livepatch': unpatching complete
% rmmod test_klp_livepatch"
