# Found by: klpsim explore --kernel replace-tag --patches 4 --funcs 3 --sets 2 --states 1 --tasks 2 --depth 16 --family every
# The shortest sequence that breaks per-task-consistency (4 steps after the 2 spawn_task lines); 'klpsim run --check --kernel replace-tag' reports:
#   per-task-consistency: completing the transition: init:1 did not switch, but cmdline_proc_show changed from the original to lp1:livepatch_cmdline_proc_show
spawn_task worker
spawn_task worker
insmod test_modules/lp1.ko
sleep 1
insmod test_modules/lp2.ko replace=2
sleep 1
