# replace_set is an unsigned int (v2 2/4, shown with "%u\n"); v2 4/4's test
# modules copy an int module parameter into it. So replace_set=-1 is set
# 4294967295, -1 and 0xffffffff name one set, and kstrtoint() refuses
# 4294967295 as a parameter (-ERANGE, strerror()'s wording in insmod).
start_test 'replace_set is an unsigned int'
load_lp test_klp_livepatch replace_set=-1
cat /sys/kernel/livepatch/test_klp_livepatch/replace_set
cat /sys/module/test_klp_livepatch/parameters/replace_set
insmod test_klp_atomic_replace replace_set=4294967295
insmod test_klp_atomic_replace replace_set=0xffffffff
insmod test_klp_atomic_replace replace_set=-+1
load_lp test_klp_atomic_replace replace_set=-0x1
cat /sys/kernel/livepatch/test_klp_atomic_replace/replace_set
ls /sys/kernel/livepatch
unload_lp test_klp_livepatch
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
