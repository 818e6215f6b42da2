# Declared IPMODIFY users exclude a livepatch: fail_function (a kprobe with a
# dummy post_handler) and a kprobe with a post_handler (lpc26-truth.md, rows
# B and E). On 7.1 and replace-set, 587e8e6d640b makes the livepatch-first
# order fail silently.
start_test 'IPMODIFY users and a livepatch'
# fail_function first: the livepatch is refused with -EBUSY
echo __x64_sys_getppid > /sys/kernel/debug/fail_function/inject
echo 0xfffffffffffffff2 > /sys/kernel/debug/fail_function/__x64_sys_getppid/retval
cat /sys/kernel/debug/fail_function/__x64_sys_getppid/retval
echo 1 > /sys/kernel/debug/fail_function/__x64_sys_getppid/retval
echo 100 > /sys/kernel/debug/fail_function/probability
echo 2 > /sys/kernel/debug/fail_function/times
echo 0 > /sys/kernel/debug/fail_function/verbose
load_failing_mod lp_getppid
call __x64_sys_getppid
call __x64_sys_getppid
call __x64_sys_getppid
# only listed functions, once each
echo cmdline_proc_show > /sys/kernel/debug/fail_function/inject
echo __x64_sys_getppid > /sys/kernel/debug/fail_function/inject
echo '!__x64_sys_getppid' > /sys/kernel/debug/fail_function/inject
# livepatch first: registration "succeeds", but nothing is armed
load_lp lp_getppid
echo __x64_sys_getppid > /sys/kernel/debug/fail_function/inject
cat /sys/kernel/debug/fail_function/inject
cat /sys/kernel/debug/kprobes/list
echo 1 > /sys/kernel/debug/fail_function/times
call __x64_sys_getppid
# a kprobe without post_handler is welcome
load_mod test_klp_kprobe has_post_handler=false
cat /sys/kernel/debug/kprobes/list
unload_mod test_klp_kprobe
disable_lp lp_getppid
unload_lp lp_getppid
