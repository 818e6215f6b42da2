# test-ftrace.sh, case 1: "livepatch interaction with ftrace_enabled sysctl"
start_test 'livepatch interaction with ftrace_enabled sysctl'
set_ftrace_enabled 0
load_failing_mod test_klp_livepatch
set_ftrace_enabled 1
load_lp test_klp_livepatch
cat /proc/cmdline
set_ftrace_enabled --fail 0
cat /proc/cmdline
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
check_result "livepatch: kernel.ftrace_enabled = 0
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
livepatch: kernel.ftrace_enabled = 1
% insmod test_modules/test_klp_livepatch.ko
livepatch: enabling patch 'test_klp_livepatch'
livepatch: 'test_klp_livepatch': initializing patching transition
livepatch: 'test_klp_livepatch': starting patching transition
livepatch: 'test_klp_livepatch': completing patching transition
livepatch: 'test_klp_livepatch': patching complete
livepatch: sysctl: setting key \"kernel.ftrace_enabled\": Device or resource busy
% echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
livepatch: 'test_klp_livepatch': initializing unpatching transition
livepatch: 'test_klp_livepatch': starting unpatching transition
livepatch: 'test_klp_livepatch': completing unpatching transition
livepatch: 'test_klp_livepatch': unpatching complete
% rmmod test_klp_livepatch"
