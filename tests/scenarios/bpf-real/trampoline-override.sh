# An fexit trampoline calls the function itself (BPF_TRAMP_F_CALL_ORIG).
# Alone on the site it is built without ORIG_STACK and calls the original
# body, whatever an override left in regs->ip: the override is lost. Next
# to a livepatch it shares the site (SHARE_IPMODIFY, ORIG_STACK) and calls
# what the list handlers chose. The model derives this from the code;
# lpc26-livepatch did not measure it.
start_test 'a trampoline that calls the function, and an override'
bpf_attach kprobe __x64_sys_syncfs --override -EPERM --name ovr
call __x64_sys_syncfs
bpf_attach fexit __x64_sys_syncfs --name exit
call __x64_sys_syncfs
load_lp lp_syncfs
call __x64_sys_syncfs
disable_lp lp_syncfs
unload_lp lp_syncfs
call __x64_sys_syncfs
bpf_detach exit
call __x64_sys_syncfs
bpf_detach ovr
