# T10: a kprobe on another function, registered before the livepatch, keeps
# the shared kprobe_ftrace_ops older than the livepatch's ops: an override
# attached after the livepatch still wins, and keeps winning once the
# unrelated probe is gone. Reloading the livepatch moves its ops to the
# head of the list: the override wins then too (lpc26-truth.md, T10, T11).
start_test 'an unrelated kprobe decides'
load_mod mod_ei
bpf_attach kprobe version_proc_show --name unrelated
load_lp lp_mod_ei
bpf_attach kprobe mod_ei:mod_ei_alloc --override -ENOMEM --name ovr
call mod_ei:mod_ei_alloc
bpf_detach unrelated
call mod_ei:mod_ei_alloc
bpf_detach ovr
bpf_attach kprobe mod_ei:mod_ei_alloc --override -ENOMEM --name ovr
call mod_ei:mod_ei_alloc
disable_lp lp_mod_ei
unload_lp lp_mod_ei
load_lp lp_mod_ei
call mod_ei:mod_ei_alloc
bpf_detach ovr
disable_lp lp_mod_ei
unload_lp lp_mod_ei
unload_mod mod_ei
