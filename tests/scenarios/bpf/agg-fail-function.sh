# fail_function's kprobe has a dummy post_handler: alone it is armed on
# kprobe_ipmodify_ops and excludes a livepatch (ipmodify.sh). Joining the
# armed kprobe of a BPF program it is not re-armed (register_aggr_kprobe()):
# no IPMODIFY, the livepatch loads, and the winner of a call is decided by
# list order: kprobe_ftrace_ops registered after the livepatch's ops runs
# before it, so the livepatch wins; registered before, the override wins.
# aggr_pre_handler() runs the newest probe (fail_function) first and stops
# when it injects: the BPF program does not run then.
start_test 'a livepatch, then fail_function joins a BPF kprobe'
load_lp lp_getppid
bpf_attach kprobe __x64_sys_getppid --name prog
echo __x64_sys_getppid > /sys/kernel/debug/fail_function/inject
echo 0xfffffffffffffff2 > /sys/kernel/debug/fail_function/__x64_sys_getppid/retval
echo 100 > /sys/kernel/debug/fail_function/probability
echo 1 > /sys/kernel/debug/fail_function/times
echo 0 > /sys/kernel/debug/fail_function/verbose
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
call __x64_sys_getppid
call __x64_sys_getppid
disable_lp lp_getppid
unload_lp lp_getppid
# The aggregate keeps fail_function's post_handler, so its last probe is
# disarmed through kprobe_ipmodify_ops, which never had it: the WARN_ONCE,
# and kprobe_ftrace_ops stays registered on the function.
echo '!__x64_sys_getppid' > /sys/kernel/debug/fail_function/inject
bpf_detach prog
cat /sys/kernel/tracing/enabled_functions

start_test 'fail_function joins a BPF kprobe, then a livepatch'
bpf_attach kprobe __x64_sys_getppid --name prog2
echo __x64_sys_getppid > /sys/kernel/debug/fail_function/inject
echo 0xfffffffffffffff2 > /sys/kernel/debug/fail_function/__x64_sys_getppid/retval
echo 1 > /sys/kernel/debug/fail_function/times
load_lp lp_getppid
cat /sys/kernel/tracing/enabled_functions
call __x64_sys_getppid
call __x64_sys_getppid
disable_lp lp_getppid
unload_lp lp_getppid
