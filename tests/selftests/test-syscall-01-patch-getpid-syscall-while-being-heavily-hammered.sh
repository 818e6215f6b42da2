# test-syscall.sh, case 1: "patch getpid syscall while being heavily hammered"
start_test 'patch getpid syscall while being heavily hammered'
spawn_task test_klp-call_getpid --busy __x64_sys_getpid
spawn_task test_klp-call_getpid --busy __x64_sys_getpid
load_lp test_klp_syscall klp_pids=1001,1002
loop_until grep -q '^0$' /sys/kernel/test_klp_syscall/npids
log 'test_klp_syscall: Remaining not livepatched processes: 0'
kill 1001
kill 1002
disable_lp test_klp_syscall
unload_lp test_klp_syscall
check_result "% insmod test_modules/test_klp_syscall.ko klp_pids=1001,1002
livepatch: enabling patch 'test_klp_syscall'
livepatch: 'test_klp_syscall': initializing patching transition
livepatch: 'test_klp_syscall': starting patching transition
livepatch: 'test_klp_syscall': completing patching transition
livepatch: 'test_klp_syscall': patching complete
test_klp_syscall: Remaining not livepatched processes: 0
% echo 0 > /sys/kernel/livepatch/test_klp_syscall/enabled
livepatch: 'test_klp_syscall': initializing unpatching transition
livepatch: 'test_klp_syscall': starting unpatching transition
livepatch: 'test_klp_syscall': completing unpatching transition
livepatch: 'test_klp_syscall': unpatching complete
% rmmod test_klp_syscall"
