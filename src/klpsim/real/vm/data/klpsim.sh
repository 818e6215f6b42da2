# klpsim's helper verbs for scenario scripts on a real kernel.
#
# Sourced after the kernel's own functions.sh (taken from Debian's
# linux-source at run time).  A verb is defined here only when the kernel's
# copy lacks it, so a kernel that has a verb always uses its own.  The
# behaviour follows klpsim's scenario language (spec/scenarios.md).

klpsim_has() { declare -F "$1" > /dev/null; }

if [[ -e /sys/kernel/tracing/trace ]]; then
	KLPSIM_TRACING=/sys/kernel/tracing
else
	KLPSIM_TRACING=/sys/kernel/debug/tracing
fi

klpsim_has unload_lp || unload_lp() { unload_mod "$1"; }

klpsim_has cleanup_tracing || cleanup_tracing() {
	echo 0 > "$KLPSIM_TRACING/tracing_on"
	echo > "$KLPSIM_TRACING/set_ftrace_filter"
	echo nop > "$KLPSIM_TRACING/current_tracer"
	echo > "$KLPSIM_TRACING/trace"
}

klpsim_has trace_function || trace_function() {
	cleanup_tracing
	echo function > "$KLPSIM_TRACING/current_tracer"
	echo "$1" > "$KLPSIM_TRACING/set_ftrace_filter"
	echo 1 > "$KLPSIM_TRACING/tracing_on"
}

klpsim_has check_traced_functions || check_traced_functions() {
	local f
	for f in "$@"; do
		grep -Fwq "$f" "$KLPSIM_TRACING/trace" ||
			die "Function ($f) did not appear in the trace"
	done
	cleanup_tracing
}

# A scenario may name a module instead of a path: "insmod MOD ARGS".
insmod() {
	local m=$1
	shift
	case $m in
	*/* | *.ko) ;;
	*) m=test_modules/$m.ko ;;
	esac
	command insmod "$m" "$@"
}

# The BPF verbs, where the guest has klpsim's loader (bpftool.py): bpf_attach,
# bpf_detach and bpf_attachments as klpsim's bpfverbs.py words them, and
# call for what a real caller can reach (a /proc show function, MOD:FUNC
# of a klpsim module, syncfs(-1)) from a task of its own.
if [[ -x /klp/bin/klpsim-bpf ]]; then
	klpsim_has bpf_attach || bpf_attach() { /klp/bin/klpsim-bpf attach "$@"; }
	klpsim_has bpf_detach || bpf_detach() { /klp/bin/klpsim-bpf detach "$@"; }
	klpsim_has bpf_attachments || bpf_attachments() { /klp/bin/klpsim-bpf list; }
	klpsim_has call || call() {
		(($# == 1)) || die "call $*: a task other than the caller is simulator-only"
		/klp/bin/klpsim-bpf call "$1" || die "call $1: no real-kernel caller"
	}
fi

# Simulator-only verbs (klpsim's scenario/simverbs.py, bpfverbs.py, statusverbs.py)
# have no real-kernel meaning: a script that uses one stops at once, as a
# helper that dies does.  (kill is the shell's own here.)
for klpsim_verb in spawn_task sleep_task wake_task call bpf_attach bpf_detach bpf_attachments \
	klp_status func_stack klp_blocking; do
	klpsim_has "$klpsim_verb" ||
		eval "$klpsim_verb() { die \"$klpsim_verb: simulator-only verb, not available on a real kernel\"; }"
done
unset klpsim_verb
