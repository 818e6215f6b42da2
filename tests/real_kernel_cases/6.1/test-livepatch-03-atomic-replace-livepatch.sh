# 6.1's "atomic replace livepatch": one patch, then a replace patch.
start_test 'atomic replace livepatch'
load_lp test_klp_livepatch
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
load_lp test_klp_atomic_replace replace=1
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
unload_lp test_klp_livepatch
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
