# kprobe_events through tracefs (kernel/trace/trace_kprobe.c): '>' replaces
# every event and is refused (-EBUSY, nothing removed) while one is enabled;
# '>>' appends; '-:NAME' removes; a new event's kprobe is registered
# disabled; the errors and error_log entries of bad definitions.
start_test 'kprobe_events: define, enable, trace, remove'
echo 'p:kp_cmdline cmdline_proc_show' > /sys/kernel/tracing/kprobe_events
echo 'r:kp_ret cmdline_proc_show ret=$retval' >> /sys/kernel/tracing/kprobe_events
echo 'p:grp/ version_proc_show' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
cat /sys/kernel/debug/kprobes/list
ls /sys/kernel/tracing/events/kprobes
cat /sys/kernel/tracing/events/kprobes/kp_cmdline/enable
echo 1 > /sys/kernel/tracing/events/kprobes/enable
echo 1 > /sys/kernel/tracing/events/grp/p_version_proc_show_0/enable
cat /sys/kernel/tracing/events/kprobes/enable
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
echo > /sys/kernel/tracing/trace
grep -c Linux /proc/version
cat /sys/kernel/tracing/trace
echo > /sys/kernel/tracing/kprobe_events
echo '-:kp_cmdline' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
echo > /sys/kernel/tracing/trace
cat /proc/cmdline
cat /sys/kernel/tracing/trace
cat /sys/kernel/tracing/kprobe_profile
echo 0 > /sys/kernel/tracing/events/kprobes/enable
echo 0 > /sys/kernel/tracing/events/grp/enable
echo '-:kp_cmdline' >> /sys/kernel/tracing/kprobe_events
echo '-:grp/p_version_proc_show_0 version_proc_show' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
echo > /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
cat /sys/kernel/debug/kprobes/list
ls /sys/kernel/tracing/events/kprobes
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch

start_test 'kprobe_events: bad definitions'
echo > /sys/kernel/tracing/error_log
echo 'p:bad nosuchfunc' >> /sys/kernel/tracing/kprobe_events
echo 'r:bad cmdline_proc_show+8' >> /sys/kernel/tracing/kprobe_events
echo 'p:1bad cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:bad cmdline_proc_show+2' >> /sys/kernel/tracing/kprobe_events
echo 'p:bad cmdline_proc_show $retval' >> /sys/kernel/tracing/kprobe_events
echo 'p5:bad cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'x:bad cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo '-:nosuch' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/error_log
echo 'p:kp cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:kp cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'r:kp cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:kp version_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:kp meminfo_proc_show $comm' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
echo > /sys/kernel/tracing/error_log
echo 'p:kprobes/ cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:kprobes/ cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:a-b cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/error_log
echo > /sys/kernel/tracing/kprobe_events
