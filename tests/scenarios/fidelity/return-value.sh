# A replacement returns its definition's `return`. On a /proc show function
# seq_read_iter() fails the read with a negative value and drops the record
# for a positive one, so what cat reads tells which function ran. kmod's
# tools read /proc/cmdline too (kmod_new()) and say so when the read fails.
start_test 'a replacement returns its chosen value'
load_lp test_klp_ret_eperm
cat /proc/cmdline
insmod test_klp_ret_eperm
disable_lp test_klp_ret_eperm
unload_lp test_klp_ret_eperm
load_lp test_klp_ret_skip
cat /proc/cmdline
grep -c . /proc/cmdline
disable_lp test_klp_ret_skip
unload_lp test_klp_ret_skip
grep -c . /proc/cmdline
