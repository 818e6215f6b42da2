# /sys/kernel/tracing/enabled_functions: what each consumer puts on the
# record of a livepatched function (count, R I D O M columns, trampoline);
# lpc26-livepatch reads it to catch registrations that failed silently.
# A plain ftrace_ops registered before the livepatch runs after it and sees
# the new function in ftrace_regs' ip; one registered after sees the original.
start_test 'enabled_functions: a livepatch, a kprobe, a plain ftrace_ops'
cat /sys/kernel/tracing/enabled_functions
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
load_mod test_klp_kp_pre
cat /sys/kernel/tracing/enabled_functions
load_mod test_klp_ops
cat /sys/kernel/tracing/enabled_functions
cat /proc/cmdline
unload_mod test_klp_ops
unload_mod test_klp_kp_pre
cat /sys/kernel/tracing/enabled_functions
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions

start_test 'enabled_functions: a plain ftrace_ops first'
load_mod test_klp_ops
cat /sys/kernel/tracing/enabled_functions
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
cat /proc/cmdline
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
unload_mod test_klp_ops
cat /sys/kernel/tracing/enabled_functions
