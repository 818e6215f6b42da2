# Aggregated kprobes, post_handler first (kernel/kprobes.c): the aggregate is
# armed on kprobe_ipmodify_ops and stays there after the post_handler probe
# leaves (__unregister_kprobe_top() keeps its post_handler on ftrace), so a
# livepatch is refused until the last probe is gone.
start_test 'aggregated kprobes: a post_handler probe first'
load_mod test_klp_kp_post
load_mod test_klp_kp_pre
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
load_failing_mod test_klp_livepatch
unload_mod test_klp_kp_post
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
load_failing_mod test_klp_livepatch
unload_mod test_klp_kp_pre
cat /sys/kernel/tracing/enabled_functions
load_lp test_klp_livepatch
cat /sys/kernel/tracing/enabled_functions
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
