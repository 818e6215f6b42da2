# A kthread sleeps in cmdline_proc_show, which lp_a (set 0) patches. lp_c,
# the next cumulative release of set 0, drops that fix: its nop for
# cmdline_proc_show may not take effect while the kthread sleeps there, so
# the transition waits (a kthread gets no fake signal; it only wakes) until
# the kthread returns. klp_blocking and the note say who and where.
start_test 'a sleeping kthread holds a cumulative replace'
load_lp lp_a
spawn_task kloader --kthread
sleep_task 1001 cmdline_proc_show
load_lp_nowait lp_c
sleep 20
klp_blocking
func_stack cmdline_proc_show
cat /proc/1001/patch_state
wake_task 1001
loop_until grep -q '^0$' /sys/kernel/livepatch/lp_c/transition
loop_until test ! -e /sys/kernel/livepatch/lp_a
unload_lp lp_a
disable_lp lp_c
unload_lp lp_c
check_result "livepatch: enabling patch 'lp_a'
livepatch: 'lp_a': initializing patching transition
livepatch: 'lp_a': starting patching transition
livepatch: 'lp_a': completing patching transition
livepatch: 'lp_a': patching complete
livepatch: enabling patch 'lp_c'
livepatch: 'lp_c': initializing patching transition
livepatch: 'lp_c': starting patching transition
livepatch: signaling remaining tasks
livepatch: 'lp_c': completing patching transition
livepatch: 'lp_c': patching complete
livepatch: 'lp_c': initializing unpatching transition
livepatch: 'lp_c': starting unpatching transition
livepatch: 'lp_c': completing unpatching transition
livepatch: 'lp_c': unpatching complete"
