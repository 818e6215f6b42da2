# fmod_ret wins in both orders; a pass-through fmod_ret reaches new_func;
# the trampoline shares the site with the livepatch through ops_func
# (lpc26-truth.md, row D, T8, T9).
start_test 'fmod_ret versus livepatch'
bpf_attach fmod_ret __x64_sys_getppid --ret -EPERM --name deny
load_lp lp_getppid
call __x64_sys_getppid
bpf_detach deny
call __x64_sys_getppid
bpf_attach fmod_ret __x64_sys_getppid --ret -EACCES --name deny
bpf_attach fexit __x64_sys_getppid --name exit
call __x64_sys_getppid
bpf_detach deny
bpf_attach fmod_ret __x64_sys_getppid --name pass
call __x64_sys_getppid
bpf_attachments
