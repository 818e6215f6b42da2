# A program on a livepatch's new_func: active while its patch is in effect,
# silent once a cumulative update replaces it, gone with the module.
start_test 'attachment health across patch life cycles'
load_lp lp_getppid
bpf_attach kprobe lp_getppid:lp_getppid_getppid --name newfunc
bpf_attach fentry lp_getppid:lp_getppid_getppid --name pinned
bpf_attach kprobe __x64_sys_getppid --name orig
call __x64_sys_getppid
load_lp lp_getppid_v2
call __x64_sys_getppid
bpf_attachments
rmmod lp_getppid
bpf_detach pinned
unload_lp lp_getppid
bpf_attachments
