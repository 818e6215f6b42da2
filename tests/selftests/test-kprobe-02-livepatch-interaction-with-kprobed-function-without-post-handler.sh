# test-kprobe.sh, case 2: "livepatch interaction with kprobed function without post_handler"
start_test 'livepatch interaction with kprobed function without post_handler'
echo 1 > /sys/kernel/debug/kprobes/enabled
load_mod test_klp_kprobe has_post_handler=false
load_lp test_klp_livepatch
unload_mod test_klp_kprobe
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
check_result "% insmod test_modules/test_klp_kprobe.ko has_post_handler=false
% insmod test_modules/test_klp_livepatch.ko
livepatch: enabling patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': initializing patching transition
livepatch: 'test_klp_livepatch': starting patching transition
livepatch: 'test_klp_livepatch': completing patching transition
livepatch: 'test_klp_livepatch': patching complete
% rmmod test_klp_kprobe
% echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
livepatch: 'test_klp_livepatch': initializing unpatching transition
livepatch: 'test_klp_livepatch': starting unpatching transition
livepatch: 'test_klp_livepatch': completing unpatching transition
livepatch: 'test_klp_livepatch': unpatching complete
% rmmod test_klp_livepatch"
