# test-sysfs.sh, case 5: "sysfs test stack_order value"
start_test 'sysfs test stack_order value'
load_lp test_klp_atomic_replace
check_sysfs_value test_klp_atomic_replace stack_order 1
load_lp test_klp_callbacks_demo
check_sysfs_value test_klp_callbacks_demo stack_order 2
load_lp test_klp_syscall
check_sysfs_value test_klp_syscall stack_order 3
disable_lp test_klp_callbacks_demo
unload_lp test_klp_callbacks_demo
check_sysfs_value test_klp_atomic_replace stack_order 1
check_sysfs_value test_klp_syscall stack_order 2
disable_lp test_klp_syscall
unload_lp test_klp_syscall
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
check_result "% insmod test_modules/test_klp_atomic_replace.ko
livepatch: enabling patch 'test_klp_atomic_replace'
livepatch: 'test_klp_atomic_replace': initializing patching transition
livepatch: 'test_klp_atomic_replace': starting patching transition
livepatch: 'test_klp_atomic_replace': completing patching transition
livepatch: 'test_klp_atomic_replace': patching complete
% insmod test_modules/test_klp_callbacks_demo.ko
livepatch: enabling patch 'test_klp_callbacks_demo'
livepatch: 'test_klp_callbacks_demo': initializing patching transition
test_klp_callbacks_demo: pre_patch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': starting patching transition
livepatch: 'test_klp_callbacks_demo': completing patching transition
test_klp_callbacks_demo: post_patch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': patching complete
% insmod test_modules/test_klp_syscall.ko
livepatch: enabling patch 'test_klp_syscall'
livepatch: 'test_klp_syscall': initializing patching transition
livepatch: 'test_klp_syscall': starting patching transition
livepatch: 'test_klp_syscall': completing patching transition
livepatch: 'test_klp_syscall': patching complete
% echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
livepatch: 'test_klp_callbacks_demo': initializing unpatching transition
test_klp_callbacks_demo: pre_unpatch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': starting unpatching transition
livepatch: 'test_klp_callbacks_demo': completing unpatching transition
test_klp_callbacks_demo: post_unpatch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': unpatching complete
% rmmod test_klp_callbacks_demo
% echo 0 > /sys/kernel/livepatch/test_klp_syscall/enabled
livepatch: 'test_klp_syscall': initializing unpatching transition
livepatch: 'test_klp_syscall': starting unpatching transition
livepatch: 'test_klp_syscall': completing unpatching transition
livepatch: 'test_klp_syscall': unpatching complete
% rmmod test_klp_syscall
% echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
livepatch: 'test_klp_atomic_replace': initializing unpatching transition
livepatch: 'test_klp_atomic_replace': starting unpatching transition
livepatch: 'test_klp_atomic_replace': completing unpatching transition
livepatch: 'test_klp_atomic_replace': unpatching complete
% rmmod test_klp_atomic_replace"
