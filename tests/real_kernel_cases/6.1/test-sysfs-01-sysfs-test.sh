# 6.1's "sysfs test": no replace or stack_order attribute yet.
start_test 'sysfs test'
load_lp test_klp_livepatch
check_sysfs_rights test_klp_livepatch '' drwxr-xr-x
check_sysfs_rights test_klp_livepatch enabled -rw-r--r--
check_sysfs_value test_klp_livepatch enabled 1
check_sysfs_rights test_klp_livepatch force --w-------
check_sysfs_rights test_klp_livepatch transition -r--r--r--
check_sysfs_value test_klp_livepatch transition 0
check_sysfs_rights test_klp_livepatch vmlinux/patched -r--r--r--
check_sysfs_value test_klp_livepatch vmlinux/patched 1
loop_until test ! -e /sys/kernel/livepatch/test_klp_livepatch/replace
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
