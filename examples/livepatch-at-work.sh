# Livepatching at work, on the default replace-set kernel.
#
# A cumulative patch in set 0, a hook patch in set 1, a task that holds a
# transition by sleeping in a function being patched, and an update of set 0
# that replaces only set 0.

start_test 'livepatching at work'
cat /proc/cmdline

# Set 0, release 1.
load_lp lp_cmdline_v1
cat /proc/cmdline
cat /sys/kernel/livepatch/lp_cmdline_v1/replace_set

# A hook patch in its own set coexists with set 0.
load_lp lp_hook
cat /proc/version

# A task sleeps inside the v1 replacement: the v2 transition must wait.
spawn_task reader
sleep_task 1001 cmdline_proc_show
load_lp_nowait lp_cmdline_v2
sleep 3
cat /sys/kernel/livepatch/lp_cmdline_v2/transition
cat /proc/1001/patch_state
wake_task 1001
loop_until grep -q '^0$' /sys/kernel/livepatch/lp_cmdline_v2/transition

# v2 replaced v1 (same set); the hook patch is untouched.
loop_until test ! -e /sys/kernel/livepatch/lp_cmdline_v1
ls /sys/kernel/livepatch
grep 'patched' /proc/cmdline /proc/meminfo > /dev/kmsg
cat /proc/version
unload_lp lp_cmdline_v1

# A patch of set 1 that touches a set-0 function is refused.
load_failing_mod lp_cmdline_v1 replace_set=1
