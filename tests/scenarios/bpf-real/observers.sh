# Observers on a livepatched function: they fire in ftrace's order (list
# ops newest first, the BPF trampoline last) and report the original's
# name; a breakpoint inside the original body goes quiet while the patch
# is in effect (lpc26-truth.md, F, H, K, L, M). kprobe_multi needs
# CONFIG_FPROBE, which Debian's 6.1 and the replace-set kernel lack.
start_test 'observers on a livepatched function'
bpf_attach fentry cmdline_proc_show --name fentry
bpf_attach fexit cmdline_proc_show --name fexit
bpf_attach kprobe cmdline_proc_show --name entry
bpf_attach kprobe cmdline_proc_show+0xd --name body
bpf_attach kretprobe cmdline_proc_show --name ret
bpf_attach kprobe_multi cmdline_proc_show,version_proc_show --name multi
call cmdline_proc_show
load_lp test_klp_livepatch
call cmdline_proc_show
bpf_attach kprobe test_klp_livepatch:livepatch_cmdline_proc_show --name newfunc
call cmdline_proc_show
bpf_attachments
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
call cmdline_proc_show
bpf_attachments
