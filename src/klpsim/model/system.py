"""Boot a simulated kernel with ftrace, kprobes and livepatch for a profile."""

from collections.abc import Iterable
from dataclasses import dataclass

from klpsim.kernel.machine import Kernel, KernelConfig
from klpsim.kernel.module import ModuleSpec, module_name_error
from klpsim.kernel.symbols import SymbolSource
from klpsim.livepatch.core import Klp
from klpsim.livepatch.profiles import Profile, get_profile
from klpsim.model.events import EventLog
from klpsim.trace.bpf import Bpf
from klpsim.trace.error_inject import ErrorInjection
from klpsim.trace.ftrace import Ftrace
from klpsim.trace.kprobes import Kprobes
from klpsim.trace.trace_kprobe import TraceKprobes
from klpsim.trace.tracer import FunctionTracer

__all__ = ["System", "boot", "CONFIG_OPTIONS", "UnknownConfig"]

CONFIG_OPTIONS = {
    "LIVEPATCH": "kernel/livepatch itself",
    "HAVE_RELIABLE_STACKTRACE": "reliable stack traces: without them no task ever switches",
    "DYNAMIC_FTRACE_WITH_ARGS": "ftrace with arguments (fprobe over ftrace)",
    "KPROBES": "kprobes",
    "KPROBES_ON_FTRACE": "kprobes on ftrace call sites (kprobe_ftrace_ops)",
    "FUNCTION_ERROR_INJECTION": "the error-injection list",
    "FAIL_FUNCTION": "fail_function (debugfs), on the error-injection list",
    "FPROBE": "fprobe: kprobe_multi links",
    "SECURITY": "the LSM hooks: without it security_* are inline stubs, not functions",
    "BPF_KPROBE_OVERRIDE": "bpf_override_return()",
    "BPF_EVENTS": "BPF programs on kprobes and tracepoints",
    "KPROBE_OVERRIDE_KLP_FUNC": "RFC 2/4 of 2026-04-02: overrides on livepatch functions",
    "KPROBE_EVENTS": "tracefs kprobe_events and the kprobe trace events",
    "FUNCTION_GRAPH_TRACER": "the function_graph tracer",
    "X86_KERNEL_IBT": "endbr64 at function entry: a probe on func+0 sits at func+4",
    "MODULE_SIG": "module signatures: an unsigned module taints the kernel (E)",
}
"""The CONFIG_ options a simulated kernel may be booted with or without."""


class UnknownConfig(ValueError):
    """A config option the simulated kernel does not know."""


# The selftests' setup_config: all of kernel/livepatch, but not the
# per-task messages of klp_try_switch_task().
SELFTEST_DYNDBG = ("file kernel/livepatch/* +p", "func klp_try_switch_task -p")


@dataclass
class System:
    """A booted machine: the kernel and the subsystems above it."""

    profile: Profile
    kernel: Kernel
    ftrace: Ftrace
    tracer: FunctionTracer
    kprobes: Kprobes | None
    klp: Klp
    error_injection: ErrorInjection
    bpf: Bpf
    events: EventLog
    """Every typed event since boot (model/events.py)."""
    trace_kprobes: TraceKprobes | None = None
    """kprobe_events and its events (CONFIG_KPROBE_EVENTS), if configured."""


def boot(
    profile: str | Profile = "replace-set",
    nr_cpus: int = 2,
    extra_funcs: int = 0,
    config: frozenset[str] | None = None,
    config_overrides: dict[str, bool] | None = None,
    dyndbg: Iterable[str] = SELFTEST_DYNDBG,
    symbols: SymbolSource | None = None,
    skip_modules: frozenset[str] = frozenset(),
) -> System:
    """Boot a kernel that behaves as *profile*.

    *symbols*: a real symbol table. vmlinux takes its names from it, and
    each module it lists is loaded at boot (in-tree and signed: no taint)
    with its names, as on the machine the table was read from, except
    *skip_modules* (a host snapshot's livepatches: they are loaded later
    through the loader, as they were on the host).
    """
    if isinstance(profile, str):
        profile = get_profile(profile)
    options = set(profile.config if config is None else config)
    unknown = sorted((config_overrides or {}).keys() - CONFIG_OPTIONS.keys())
    if unknown:
        known = ", ".join(f"CONFIG_{o}" for o in CONFIG_OPTIONS)
        raise UnknownConfig(f"unknown option CONFIG_{unknown[0]} (known: {known})")
    for option, value in (config_overrides or {}).items():
        (options.add if value else options.discard)(option)
    kernel = Kernel(
        KernelConfig(
            release=profile.release,
            nr_cpus=nr_cpus,
            config=frozenset(options),
            kstrtobool_enable_disable=profile.kstrtobool_enable_disable,
            extra_funcs=extra_funcs,
            lsm_hooks="SECURITY" in options,
            state_restore_oops_at=profile.state_restore_oops_at,
        )
    )
    for rule in dyndbg:
        kernel.log.dyndbg.control(rule)
    ftrace = Ftrace(kernel, rec_flags=profile.ftrace_rec_flags)
    tracer = FunctionTracer(kernel, ftrace)
    kprobes = None
    trace_kprobes = None
    if kernel.has_config("KPROBES_ON_FTRACE"):
        kprobes = Kprobes(
            kernel,
            ftrace,
            profile.kprobe_arm_error_ignored,
            ibt=kernel.has_config("X86_KERNEL_IBT"),
            disarm_warn_at=profile.kprobe_disarm_warn_at,
            insns=profile.kprobe_insns,
        )
        kernel.data_symbols.append("kprobe_ftrace_ops")
        if kernel.has_config("KPROBE_EVENTS"):
            trace_kprobes = TraceKprobes(
                kernel,
                kprobes,
                tracer,
                validate_symbol=profile.trace_kprobe_validate_symbol,
                maxact_err=profile.trace_probe_maxact_err,
                btf_retval=profile.trace_probe_btf_retval,
            )
    klp = Klp(kernel, ftrace, profile)
    kernel.modules.release.append(lambda mod: ftrace.release_module(mod.name))
    error_injection = ErrorInjection(kernel, kprobes)
    bpf = Bpf(
        kernel,
        ftrace,
        kprobes,
        error_injection,
        trace_kprobes=trace_kprobes,
        unknown_helper=profile.verifier_unknown_helper,
    )
    events = EventLog(kernel.clock)
    events.attach(klp.tp)
    events.attach(error_injection.tp)
    events.attach(bpf.tp)
    if symbols is not None:
        _real_symbols(kernel, symbols, skip_modules)
    return System(
        profile, kernel, ftrace, tracer, kprobes, klp, error_injection, bpf, events, trace_kprobes
    )


# kallsyms' pseudo-modules: trampolines and kprobe insn pages, not modules
_PSEUDO_MODULES = ("bpf", "__builtin__ftrace", "__builtin__kprobes")


def _real_symbols(kernel: Kernel, symbols: SymbolSource, skip: frozenset[str]) -> None:
    kernel.vmlinux.source = symbols
    for name in symbols.modules():
        if name in _PSEUDO_MODULES or name in skip or module_name_error(name) is not None:
            continue
        if kernel.modules.load_module(ModuleSpec(name, in_tree=True, signed=True), []) == 0:
            kernel.modules.modules[name].text.source = symbols
