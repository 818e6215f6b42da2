# test-kprobe.sh, case 1: "livepatch interaction with kprobed function with post_handler"
start_test 'livepatch interaction with kprobed function with post_handler'
echo 1 > /sys/kernel/debug/kprobes/enabled
load_mod test_klp_kprobe has_post_handler=true
load_failing_mod test_klp_livepatch
unload_mod test_klp_kprobe
check_result "% insmod test_modules/test_klp_kprobe.ko has_post_handler=true
% insmod test_modules/test_klp_livepatch.ko
livepatch: enabling patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': initializing patching transition
livepatch: failed to register ftrace handler for function 'cmdline_proc_show' (-16)
livepatch: failed to patch object 'vmlinux'
livepatch: failed to enable patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': canceling patching transition, going to unpatch
livepatch: 'test_klp_livepatch': completing unpatching transition
livepatch: 'test_klp_livepatch': unpatching complete
insmod: ERROR: could not insert module test_modules/test_klp_livepatch.ko: Device or resource busy
% rmmod test_klp_kprobe"
