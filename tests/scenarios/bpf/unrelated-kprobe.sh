# T10: an unrelated kprobe registered before the livepatch keeps the shared
# kprobe_ftrace_ops older than klp's ops: the override attached after the
# livepatch still wins, and keeps winning once the unrelated probe is gone.
start_test 'an unrelated kprobe decides'
bpf_attach kprobe version_proc_show --name unrelated
load_lp lp_getppid
bpf_attach kprobe __x64_sys_getppid --override -EPERM --name ovr
call __x64_sys_getppid
bpf_detach unrelated
call __x64_sys_getppid
