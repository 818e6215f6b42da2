# Found by klpsim fuzz --kernel 6.12 --seed 1012 (fuzz_1012_46):
# enabled_functions lists the records in address order, and vmlinux has
# both m_show before fs/proc's show functions, which are in file name order.
start_test 'enabled_functions in address order'
load_lp lp_order
cat /sys/kernel/tracing/enabled_functions
disable_lp lp_order
unload_lp lp_order
