# bpf_attachments' NOTE says what the next call runs, as `call` then shows
# it: an fmod_ret that skips the call, a livepatch, an override that loses
# to the livepatch and, once the livepatch is reloaded, one that wins.
# syncfs(2): its own BTF (fexit/fmod_ret attach; __x64_sys_getppid has none).
start_test 'the NOTE column says what the next call runs'
load_lp lp_syncfs
bpf_attach fexit __x64_sys_syncfs --name exit
bpf_attach fmod_ret __x64_sys_syncfs --ret -EPERM --name deny
bpf_attachments
call __x64_sys_syncfs
bpf_detach deny
bpf_attachments
call __x64_sys_syncfs
bpf_detach exit
bpf_attach kprobe_multi __x64_sys_syncfs --name watch
bpf_attach kprobe __x64_sys_syncfs --override -EPERM --name ovr
bpf_attachments
call __x64_sys_syncfs
disable_lp lp_syncfs
unload_lp lp_syncfs
load_lp lp_syncfs
bpf_attachments
call __x64_sys_syncfs
