# Who may attach what, and with which errno (docs/bpf-and-livepatch.md,
# "Attach rules"): bpf_override_return() only at the entry of an
# error-injectable function, and only with CONFIG_BPF_KPROBE_OVERRIDE (else
# the verifier refuses the program); fmod_ret only on error-injectable or
# security_* functions; fentry only where ftrace can patch; a kprobe on a
# module's function does not hold the module.
start_test 'attach rules'
load_mod mod_ei
grep mod_ei /sys/kernel/debug/error_injection/list
bpf_attach kprobe mod_ei:mod_ei_alloc --override -ENOMEM --name ovr
bpf_attach kprobe mod_ei:mod_ei_work --override -ENOMEM
bpf_attach kprobe cmdline_proc_show --override -EINVAL
bpf_attach kprobe mod_ei:mod_ei_alloc+0x4 --override -ENOMEM
bpf_attach kprobe_multi cmdline_proc_show,version_proc_show --override -EPERM
bpf_attach fmod_ret __x64_sys_syncfs --ret -EPERM --name deny
# SYSCALL_DEFINE0's entry points are aliases of __do_sys_*: no BTF id
bpf_attach fmod_ret __x64_sys_sync
bpf_attach fentry __x64_sys_getppid
bpf_attach fmod_ret security_file_open --name lsm
bpf_detach lsm
bpf_attach fmod_ret cmdline_proc_show
bpf_attach fentry __schedule
bpf_attach fexit no_such_function
bpf_attach kprobe no_such_function
bpf_attach kprobe __schedule
bpf_attach kprobe mod_ei:mod_ei_work --name work
call mod_ei:mod_ei_alloc
call mod_ei:mod_ei_work
call __x64_sys_syncfs
bpf_detach deny
bpf_attachments
rmmod mod_ei
bpf_attachments
