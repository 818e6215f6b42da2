# The function_graph tracer and a livepatch: the graph entry hook runs at the
# original's __fentry__ (no IPMODIFY, so both share the record) and the
# redirect is a tail call: the new function nests inside the original.
start_test 'function_graph and a livepatch'
echo cmdline_proc_show > /sys/kernel/tracing/set_ftrace_filter
echo function_graph > /sys/kernel/tracing/current_tracer
cat /sys/kernel/tracing/enabled_functions
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
echo livepatch_cmdline_proc_show >> /sys/kernel/tracing/set_ftrace_filter
cat /sys/kernel/tracing/set_ftrace_filter
echo cmdline_proc_show > /sys/kernel/tracing/set_graph_function
cat /sys/kernel/tracing/enabled_functions
echo > /sys/kernel/tracing/trace
cat /proc/cmdline
cat /sys/kernel/tracing/trace
echo nosuchfunc >> /sys/kernel/tracing/set_ftrace_filter
cat /sys/kernel/tracing/set_ftrace_filter
echo nop > /sys/kernel/tracing/current_tracer
echo > /sys/kernel/tracing/set_graph_function
echo > /sys/kernel/tracing/set_ftrace_filter
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
