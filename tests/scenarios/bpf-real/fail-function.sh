# fail_function (CONFIG_FAIL_FUNCTION, the replace-set kernel only) and a
# livepatch on syncfs(2): fail_function's kprobe has a dummy post_handler,
# so it is armed on kprobe_ipmodify_ops. First, it refuses the livepatch
# (-EBUSY). Livepatch first: 6.12 reports the arming error, so the function
# is not added to the injection list (7.1 arms nothing and says nothing).
start_test 'fail_function versus livepatch'
echo __x64_sys_syncfs > /sys/kernel/debug/fail_function/inject
echo 0xfffffffffffffff2 > /sys/kernel/debug/fail_function/__x64_sys_syncfs/retval
cat /sys/kernel/debug/fail_function/__x64_sys_syncfs/retval
echo 100 > /sys/kernel/debug/fail_function/probability
echo 1 > /sys/kernel/debug/fail_function/times
echo 0 > /sys/kernel/debug/fail_function/verbose
cat /sys/kernel/debug/fail_function/inject
load_failing_mod lp_syncfs
call __x64_sys_syncfs
call __x64_sys_syncfs
echo '!__x64_sys_syncfs' > /sys/kernel/debug/fail_function/inject
load_lp lp_syncfs
echo __x64_sys_syncfs > /sys/kernel/debug/fail_function/inject
cat /sys/kernel/debug/fail_function/inject
cat /sys/kernel/tracing/enabled_functions
call __x64_sys_syncfs
disable_lp lp_syncfs
unload_lp lp_syncfs
