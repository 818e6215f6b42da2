# The replace-set kernel's "sysfs test" (6.12 with the v2 series): replace
# is renamed replace_set (v2 2/4); stack_order does not exist (v2 3/4).
start_test 'sysfs test'
load_lp test_klp_livepatch
check_sysfs_rights test_klp_livepatch '' drwxr-xr-x
check_sysfs_rights test_klp_livepatch enabled -rw-r--r--
check_sysfs_value test_klp_livepatch enabled 1
check_sysfs_rights test_klp_livepatch force --w-------
check_sysfs_rights test_klp_livepatch replace_set -r--r--r--
check_sysfs_rights test_klp_livepatch transition -r--r--r--
check_sysfs_value test_klp_livepatch transition 0
check_sysfs_rights test_klp_livepatch vmlinux/patched -r--r--r--
check_sysfs_value test_klp_livepatch vmlinux/patched 1
loop_until test ! -e /sys/kernel/livepatch/test_klp_livepatch/replace
loop_until test ! -e /sys/kernel/livepatch/test_klp_livepatch/stack_order
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
