# A task sleeps in a's cmdline code; cum replaces a and is forced.
load_lp a
load_lp b
spawn_task reader
sleep_task 1001 cmdline_proc_show
load_lp_nowait cum
sleep 2
echo 1 > /sys/kernel/livepatch/cum/force
sleep 2
