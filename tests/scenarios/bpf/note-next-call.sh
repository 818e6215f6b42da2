# bpf_attachments' NOTE says what the next call runs, as `call` then shows
# it: an fmod_ret that skips the call, a livepatch, an override that loses
# to the livepatch and, once the livepatch is reloaded, one that wins.
start_test 'the NOTE column says what the next call runs'
load_lp lp_getppid
bpf_attach fexit __x64_sys_getppid --name exit
bpf_attach fmod_ret __x64_sys_getppid --ret -EPERM --name deny
bpf_attachments
call __x64_sys_getppid
bpf_detach deny
bpf_attachments
call __x64_sys_getppid
bpf_detach exit
bpf_attach kprobe_multi __x64_sys_getppid --name watch
bpf_attach kprobe __x64_sys_getppid --override -EPERM --name ovr
bpf_attachments
call __x64_sys_getppid
disable_lp lp_getppid
unload_lp lp_getppid
load_lp lp_getppid
bpf_attachments
call __x64_sys_getppid
