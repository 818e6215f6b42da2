# fmod_ret wins over a livepatch in both orders; a pass-through fmod_ret
# reaches new_func; fexit sees what the caller gets (lpc26-truth.md, row D,
# T8, T9). syncfs(2) is error-injectable where CONFIG_FUNCTION_ERROR_INJECTION
# is set (the replace-set kernel); on Debian's kernels the verifier says
# it is not modifiable.
start_test 'fmod_ret versus livepatch'
bpf_attach fmod_ret __x64_sys_syncfs --ret -EPERM --name deny
call __x64_sys_syncfs
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
bpf_attach kprobe __x64_sys_syncfs --override -EPERM --name ovr
call __x64_sys_syncfs
bpf_attachments
bpf_detach pass
bpf_detach exit
call __x64_sys_syncfs
bpf_detach ovr
disable_lp lp_syncfs
unload_lp lp_syncfs
call __x64_sys_syncfs
