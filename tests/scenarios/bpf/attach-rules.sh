# Who may attach what (docs/bpf-and-livepatch.md, "Attach rules").
start_test 'attach rules'
grep getppid /sys/kernel/debug/error_injection/list
load_mod mod_ei
grep mod_ei /sys/kernel/debug/error_injection/list
# bpf_override_return: function entry of an error-injectable function only
# (with IBT, func+4 past endbr64 is the entry too)
bpf_attach kprobe __x64_sys_getppid --override -EPERM
bpf_attach kprobe mod_ei:mod_ei_alloc --override -ENOMEM
bpf_attach kprobe mod_ei:mod_ei_work --override -ENOMEM
bpf_attach kprobe cmdline_proc_show --override -EINVAL
bpf_attach kprobe __x64_sys_getppid+0x10 --override -EPERM
# a kprobe that does not override goes anywhere traceable, offsets too
bpf_attach kprobe cmdline_proc_show
bpf_attach kprobe cmdline_proc_show+0x4
# kprobe_multi: the same check on every address
bpf_attach kprobe_multi __x64_sys_getppid,__x64_sys_getpid --override -EPERM
bpf_attach kprobe_multi __x64_sys_getppid,cmdline_proc_show --override -EPERM
bpf_attach kprobe_multi __x64_sys_getppid,cmdline_proc_show
# fmod_ret: error-injectable or security_*
bpf_attach fmod_ret __x64_sys_uname --ret -EPERM
bpf_attach fmod_ret security_file_open
bpf_attach fmod_ret cmdline_proc_show
bpf_attach fmod_ret mod_ei:mod_ei_work
# fentry/fexit: anywhere traceable
bpf_attach fentry cmdline_proc_show
bpf_attach fexit mod_ei:mod_ei_work
bpf_attach fentry native_safe_halt
bpf_attach fexit no_such_function
bpf_attach kprobe no_such_function
# programs on a module function pin it (bpf10), a kprobe does not (bpf2)
rmmod mod_ei
bpf_detach bpf10
rmmod mod_ei
# the module's entries left the list with it; its kprobe is gone
grep -c mod_ei /sys/kernel/debug/error_injection/list
bpf_attachments
