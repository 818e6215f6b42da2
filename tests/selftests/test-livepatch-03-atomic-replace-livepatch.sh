# test-livepatch.sh, case 3: "atomic replace livepatch"
start_test 'atomic replace livepatch'
load_lp test_klp_livepatch
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
load_lp test_klp_syscall
load_lp test_klp_callbacks_demo
# three patches listed
ls /sys/kernel/livepatch
load_lp test_klp_atomic_replace replace=1
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
# the replaced patches' directories go away asynchronously
loop_until test ! -e /sys/kernel/livepatch/test_klp_livepatch
loop_until test ! -e /sys/kernel/livepatch/test_klp_callbacks_demo
ls /sys/kernel/livepatch
unload_lp test_klp_callbacks_demo
unload_lp test_klp_syscall
unload_lp test_klp_livepatch
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
check_result "% insmod test_modules/test_klp_livepatch.ko
livepatch: enabling patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': initializing patching transition
livepatch: 'test_klp_livepatch': starting patching transition
livepatch: 'test_klp_livepatch': completing patching transition
livepatch: 'test_klp_livepatch': patching complete
test_klp_livepatch: this has been live patched
% insmod test_modules/test_klp_syscall.ko
livepatch: enabling patch 'test_klp_syscall'
livepatch: 'test_klp_syscall': initializing patching transition
livepatch: 'test_klp_syscall': starting patching transition
livepatch: 'test_klp_syscall': completing patching transition
livepatch: 'test_klp_syscall': patching complete
% insmod test_modules/test_klp_callbacks_demo.ko
livepatch: enabling patch 'test_klp_callbacks_demo'
livepatch: 'test_klp_callbacks_demo': initializing patching transition
test_klp_callbacks_demo: pre_patch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': starting patching transition
livepatch: 'test_klp_callbacks_demo': completing patching transition
test_klp_callbacks_demo: post_patch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': patching complete
% insmod test_modules/test_klp_atomic_replace.ko replace=1
livepatch: enabling patch 'test_klp_atomic_replace'
livepatch: 'test_klp_atomic_replace': initializing patching transition
livepatch: 'test_klp_atomic_replace': starting patching transition
livepatch: 'test_klp_atomic_replace': completing patching transition
livepatch: 'test_klp_atomic_replace': patching complete
test_klp_atomic_replace: this has been live patched
% rmmod test_klp_callbacks_demo
% rmmod test_klp_syscall
% rmmod test_klp_livepatch
test_klp_atomic_replace: this has been live patched
% echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
livepatch: 'test_klp_atomic_replace': initializing unpatching transition
livepatch: 'test_klp_atomic_replace': starting unpatching transition
livepatch: 'test_klp_atomic_replace': completing unpatching transition
livepatch: 'test_klp_atomic_replace': unpatching complete
% rmmod test_klp_atomic_replace"
