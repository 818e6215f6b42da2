# A kprobe event is registered disabled. A post_handler kprobe joining it
# arms the aggregate, by its post_handler: kprobe_ipmodify_ops. Next to a
# livepatch that fails with -EBUSY even on kernels where a lone probe's
# arming error is dropped (587e8e6d640b): register_aggr_kprobe() returns it.
# The aggregate keeps the post_handler, so enabling the event (no
# post_handler) is -EBUSY too, and once enabled without a livepatch it holds
# IPMODIFY and refuses the next livepatch.
start_test 'a kprobe event and a post_handler kprobe on a livepatched function'
load_lp test_klp_livepatch
insmod test_klp_kp_post
cat /sys/kernel/debug/kprobes/list
rmmod test_klp_kp_post
echo 'p:kpev cmdline_proc_show' > /sys/kernel/tracing/kprobe_events
insmod test_klp_kp_post
cat /sys/kernel/debug/kprobes/list
echo 1 > /sys/kernel/tracing/events/kprobes/kpev/enable
cat /sys/kernel/tracing/events/kprobes/kpev/enable
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
echo 1 > /sys/kernel/tracing/events/kprobes/kpev/enable
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
load_failing_mod test_klp_livepatch
echo 0 > /sys/kernel/tracing/events/kprobes/kpev/enable
echo > /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/enabled_functions
