# Aggregated kprobes, no post_handler first: the aggregate is armed on
# kprobe_ftrace_ops; a post_handler probe that joins it is not re-armed, so
# there is no IPMODIFY and a livepatch loads. kprobe_ftrace_ops is older than
# the livepatch's ops, runs after it and restores the ip it found: the
# livepatch wins. The handlers run newest first.
#
# Disarming the aggregate later goes through kprobe_ipmodify_ops (its
# post_handler is kept), which never had it: ftrace_set_filter_ip() fails,
# the WARN_ONCE fires and the last probe stays registered after its module
# is gone (on Debian's 6.12 the next hit oopses). Disarming all kprobes
# first, as here, lets it be unregistered, but kprobe_ftrace_ops stays on
# cmdline_proc_show.
start_test 'aggregated kprobes: a post_handler probe joins'
load_mod test_klp_kp_pre
load_mod test_klp_kp_post
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
cat /proc/cmdline
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
unload_mod test_klp_kp_post
echo 0 > /sys/kernel/debug/kprobes/enabled
unload_mod test_klp_kp_pre
echo 1 > /sys/kernel/debug/kprobes/enabled
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
load_mod test_klp_kp_post
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
cat /proc/cmdline
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
