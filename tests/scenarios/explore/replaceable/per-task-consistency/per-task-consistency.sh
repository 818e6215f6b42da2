# Found by: klpsim explore --kernel replaceable --patches 3 --funcs 2 --sets 1 --states 0 --tasks 0 --depth 6 --module-funcs 0
# The shortest sequence that breaks per-task-consistency (5 steps after the 0 spawn_task lines); 'klpsim run --check --kernel replaceable' reports:
#   per-task-consistency: completing the transition: init:1 did not switch, but cmdline_proc_show changed from lp1:livepatch_cmdline_proc_show to the original
insmod test_modules/lp1.ko
sleep 1
insmod test_modules/lp3.ko
echo 1 > /sys/kernel/livepatch/lp1/replaceable
sleep 1
