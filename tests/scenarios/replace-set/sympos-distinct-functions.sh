# m_show exists twice in vmlinux (/proc/modules and /proc/mounts): sympos 1
# and 2 are different functions, so two sets may patch one each.
start_test 'sympos picks distinct functions'
load_lp lp_dup1
load_lp lp_dup2
ls /sys/kernel/livepatch/lp_dup1/vmlinux /sys/kernel/livepatch/lp_dup2/vmlinux
disable_lp lp_dup2
unload_lp lp_dup2
disable_lp lp_dup1
unload_lp lp_dup1
check_result "livepatch: enabling patch 'lp_dup1'
livepatch: 'lp_dup1': initializing patching transition
livepatch: 'lp_dup1': starting patching transition
livepatch: 'lp_dup1': completing patching transition
livepatch: 'lp_dup1': patching complete
livepatch: enabling patch 'lp_dup2'
livepatch: 'lp_dup2': initializing patching transition
livepatch: 'lp_dup2': starting patching transition
livepatch: 'lp_dup2': completing patching transition
livepatch: 'lp_dup2': patching complete
livepatch: 'lp_dup2': initializing unpatching transition
livepatch: 'lp_dup2': starting unpatching transition
livepatch: 'lp_dup2': completing unpatching transition
livepatch: 'lp_dup2': unpatching complete
livepatch: 'lp_dup1': initializing unpatching transition
livepatch: 'lp_dup1': starting unpatching transition
livepatch: 'lp_dup1': completing unpatching transition
livepatch: 'lp_dup1': unpatching complete"
