# A program on a livepatch's new_func: it fires while its patch is in
# effect, goes quiet once a cumulative update replaces the patch, and its
# kprobe goes with the module; a program on the original keeps firing.
start_test 'attachments across a cumulative replace'
load_lp lp_version
bpf_attach kprobe lp_version:lp_version_show --name newfunc
bpf_attach kprobe version_proc_show --name orig
bpf_attach fexit version_proc_show --name exit
call version_proc_show
load_lp lp_version_v2
call version_proc_show
bpf_attachments
unload_lp lp_version
call version_proc_show
bpf_attachments
disable_lp lp_version_v2
unload_lp lp_version_v2
call version_proc_show
