# bpf_override_return() and a livepatch on one function: nothing refuses
# either, and the older ftrace_ops runs last and wins (lpc26-truth.md, row
# C, T4, T5). Needs CONFIG_BPF_KPROBE_OVERRIDE (the replace-set kernel);
# on Debian's kernels the verifier refuses the programs.
start_test 'override versus livepatch'
load_mod mod_ei
bpf_attach kprobe mod_ei:mod_ei_alloc --override -ENOMEM --name ovr
call mod_ei:mod_ei_alloc
# kprobe_ftrace_ops is older than the livepatch's ops: the override wins
load_lp lp_mod_ei
call mod_ei:mod_ei_alloc
# re-attached, the program's ops is the newer one: the livepatch wins
bpf_detach ovr
bpf_attach kprobe mod_ei:mod_ei_alloc --override -ENOMEM --name ovr
call mod_ei:mod_ei_alloc
cat /sys/kernel/debug/kprobes/list
cat /sys/kernel/tracing/enabled_functions
# new_func is error-injectable too: an override on it comes after both
bpf_attach kprobe lp_mod_ei:lp_mod_ei_alloc --override -EIO --name ovr2
call mod_ei:mod_ei_alloc
bpf_attachments
bpf_detach ovr
bpf_detach ovr2
disable_lp lp_mod_ei
unload_lp lp_mod_ei
unload_mod mod_ei
