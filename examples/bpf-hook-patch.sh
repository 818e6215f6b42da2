# Why Yafang Shao wanted the BPF hook patch out of the replaceable world.
#
# A livepatch turns bonding's slave selection into a hook; a kprobe BPF
# program overrides the hook's return value to pick a slave. Meanwhile the
# distribution ships cumulative fix releases, one after the other.
#
# Run it on both kernels:
#   klpsim run --kernel replace-set examples/bpf-hook-patch.sh
#   klpsim run --kernel 7.1 examples/bpf-hook-patch.sh
#
# replace-set: the hook patch lives in replace set 1, the fixes in set 0.
# Every fix release replaces only set 0; the hook stays patched and the BPF
# program stays attached and effective through all of them.
#
# 7.1: the fixes are atomic-replace patches (replace=1). The first one
# replaces every patch, the hook patch included: bond_xmit_3ad_xor_slave_get
# runs its original code again and the program, still attached, is never
# reached (silent). rmmod of the hook patch takes the program's kprobe with
# it (gone). Keeping the hook would mean rebuilding it into every fix release
# and re-attaching the program to the new copy each time, which is the
# latency Yafang called unacceptable.

start_test 'a BPF hook patch through cumulative updates'
load_mod bonding
load_lp lp_bond_hook
bpf_attach kprobe lp_bond_hook:bond_get_slave_hook --override 2 --name slave_select
call bonding:bond_xmit_3ad_xor_slave_get

# Fix release 1.
load_lp lp_fix_v1
call bonding:bond_xmit_3ad_xor_slave_get
bpf_attachments

# Fix releases 2 and 3.
load_lp lp_fix_v2
load_lp lp_fix_v3
cat /proc/cmdline
call bonding:bond_xmit_3ad_xor_slave_get
bpf_attachments
ls /sys/kernel/livepatch

# Removing the hook module: on 7.1 its patch was replaced, so the module can
# go and takes the program's kprobe with it; on replace-set it is in use.
rmmod lp_bond_hook
bpf_attachments
