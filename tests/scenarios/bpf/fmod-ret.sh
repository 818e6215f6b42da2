# fmod_ret wins in both orders; a pass-through fmod_ret reaches new_func;
# the trampoline shares the site with the livepatch through ops_func
# (lpc26-truth.md, row D, T8, T9).
start_test 'fmod_ret versus livepatch'
bpf_attach fmod_ret __x64_sys_syncfs --ret -EPERM --name deny
load_lp lp_syncfs
call __x64_sys_syncfs
bpf_detach deny
call __x64_sys_syncfs
bpf_attach fmod_ret __x64_sys_syncfs --ret -EACCES --name deny
bpf_attach fexit __x64_sys_syncfs --name exit
call __x64_sys_syncfs
bpf_detach deny
bpf_attach fmod_ret __x64_sys_syncfs --name pass
call __x64_sys_syncfs
bpf_attachments
