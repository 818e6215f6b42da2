# A kprobe_multi program that calls bpf_override_return() and a livepatch
# on one function: fprobe_ftrace_ops stands where kprobe_ftrace_ops stands
# for a kprobe, and the older ftrace_ops runs last and wins. Needs
# CONFIG_FPROBE and CONFIG_BPF_KPROBE_OVERRIDE (the replace-set kernel); on
# Debian's kernels the verifier refuses the program, or the link is
# -EOPNOTSUPP (6.1).
start_test 'kprobe_multi override versus livepatch'
bpf_attach kprobe_multi __x64_sys_syncfs --override -EPERM --name movr
call __x64_sys_syncfs
# fprobe_ftrace_ops is older than the livepatch's ops: the override wins
load_lp lp_syncfs
call __x64_sys_syncfs
# re-attached, the program's ops is the newer one: the livepatch wins
bpf_detach movr
bpf_attach kprobe_multi __x64_sys_syncfs --override -EPERM --name movr
call __x64_sys_syncfs
bpf_attachments
bpf_detach movr
call __x64_sys_syncfs
disable_lp lp_syncfs
unload_lp lp_syncfs
call __x64_sys_syncfs
