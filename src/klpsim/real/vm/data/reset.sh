#!/bin/bash
# Bring the guest back to its boot state between two scripts: every
# livepatch disabled and freed, every module unloaded, ftrace and tracing as
# at boot.  Exit 1 when that cannot be reached; the host then reboots.
# After an oops the dying task may have held a lock (klp_mutex: every
# write below would block): only a reboot gives a clean state.
if (( $(< /proc/sys/kernel/tainted) & 128 )); then
	echo "reset: the kernel oopsed (taint D)"
	exit 1
fi
# BPF links first: a program on a module's function holds the module.
[[ -x /klp/bin/klpsim-bpf ]] && /klp/bin/klpsim-bpf reset
deadline=$((SECONDS + 30))
stuck=0
while :; do
	for p in /sys/kernel/livepatch/*; do
		[[ -d $p ]] || continue
		[[ $(cat "$p/enabled" 2>/dev/null) == 1 ]] && echo 0 > "$p/enabled" 2>/dev/null
	done
	while read -r mod _ refcnt _; do
		[[ $refcnt == 0 ]] && rmmod "$mod" 2>/dev/null
	done < /proc/modules
	if [[ -z $(ls /sys/kernel/livepatch) && -z $(< /proc/modules) ]]; then
		break
	fi
	# A forced livepatch keeps its module reference for good
	# (klp_free_patch_finish()): with no patch left and nothing unloading
	# for two seconds, waiting longer cannot help.
	mods=$(< /proc/modules)
	if [[ -z $(ls /sys/kernel/livepatch) && $mods == "${last:-}" ]]; then
		((stuck++))
	else
		stuck=0
	fi
	last=$mods
	if ((SECONDS >= deadline || stuck >= 20)); then
		echo "reset: could not unload: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
		exit 1
	fi
	sleep 0.1
done
sysctl -q kernel.ftrace_enabled=1
echo 'file kernel/livepatch/* -p' > /sys/kernel/debug/dynamic_debug/control
[[ -w /sys/kernel/debug/kprobes/enabled ]] && echo 1 > /sys/kernel/debug/kprobes/enabled
T=/sys/kernel/tracing
[[ -e $T/trace ]] || T=/sys/kernel/debug/tracing
if [[ -e $T/trace ]]; then
	echo 0 > $T/tracing_on
	echo > $T/set_ftrace_filter
	echo nop > $T/current_tracer
	echo > $T/trace
fi
echo 4 > /proc/sys/kernel/printk
rm -rf /tmp/klp-run
dmesg -C
