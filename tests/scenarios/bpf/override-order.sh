# bpf_override_return and a livepatch on one function: nothing refuses
# either; the older ftrace_ops runs last and wins (lpc26-truth.md, row C,
# T4, T5, T11).
start_test 'override versus livepatch'
# livepatch first: the kprobe ops is newer, runs first, and klp rewrites the ip
load_lp lp_getppid
bpf_attach kprobe __x64_sys_getppid --override -EPERM --name ovr
call __x64_sys_getppid
bpf_attachments
# reload the livepatch: its ops goes to the head, the override now wins
disable_lp lp_getppid
unload_lp lp_getppid
load_lp lp_getppid
call __x64_sys_getppid
bpf_attachments
# re-attach the program (the last kprobe user): kprobe_ftrace_ops goes to the head
bpf_detach ovr
bpf_attach kprobe __x64_sys_getppid --override -EPERM --name ovr
call __x64_sys_getppid
cat /sys/kernel/debug/kprobes/list
disable_lp lp_getppid
unload_lp lp_getppid
call __x64_sys_getppid
