"""Attachment health: is each BPF program still reached by the calls it was
attached for?

The kernel has no such notion; a user finds out by watching counters. The
model can answer it from the livepatch state, so this module sits above
livepatch/ (trace/ knows nothing about patches):

* **active**: attached, armed, and calls reach the code it hooks;
* **silent**: attached, but calls no longer reach that code. A program on a
  livepatch's new_func goes silent the moment an atomic replace (or a
  disable) takes that func off its function's func_stack; a breakpoint
  inside an original body goes silent while a livepatch redirects every
  call ("kprobes in the original function are ignored once the code is
  redirected", Documentation/livepatch/livepatch.rst); nothing fires while
  kprobes or ftrace are disabled;
* **gone**: its function's text went away with its module (rmmod); a kprobe
  does not pin the module it probes.

Probes at one address share an aggregate kprobe (trace/kprobes.py), armed on
whichever of kprobe_ftrace_ops and kprobe_ipmodify_ops its post_handler chose
when it was armed; aggr_pre_handler() runs the probes newest first and stops
at a pre_handler that returns nonzero, as a BPF program that overrides the
return does: the older probes of the aggregate are silent.

A function of a livepatch module that is not any klp_func's new_func (a
helper) is taken to be reached while its patch is enabled: the model does
not know the patch's call graph.
"""

from typing import NamedTuple

from klpsim.kernel.symbols import Symbol
from klpsim.livepatch.core import Klp
from klpsim.livepatch.patch import KlpOps
from klpsim.livepatch.structs import KlpFunc
from klpsim.model.system import System
from klpsim.trace.bpf import BpfLink
from klpsim.trace.events import KPROBE_KINDS, MULTI_KINDS, TRAMP_KINDS, LinkKind, TrampolineFlag
from klpsim.trace.kprobes import Kprobe

__all__ = [
    "Health",
    "attachment_health",
    "entry_for",
    "effective_target",
    "redirect_of",
    "shadowed_by",
    "next_call",
    "kprobe_health",
]


class Health(NamedTuple):
    """One attachment's state."""

    link: BpfLink
    """The attachment."""
    state: str
    """``active``, ``silent`` or ``gone``."""
    note: str
    """Why, or what a user would be surprised by; may be empty."""


def _live_funcs(ops: KlpOps) -> list[KlpFunc]:
    """The func_stack entries some task may run: the top one, and during a
    transition the one below it (klp_ftrace_handler())."""
    stack = ops.func_stack
    if not stack:
        return []
    funcs = [stack[0]]
    if stack[0].transition and len(stack) > 1:
        funcs.append(stack[1])
    return [f for f in funcs if not f.nop]


def redirect_of(klp: Klp, sym: Symbol) -> KlpOps | None:
    """The klp_ops that redirects calls of *sym*, if a livepatch does."""
    ops = klp.ops.get(sym)
    if ops is None or not ops.fops.enabled:
        return None
    return ops if _live_funcs(ops) else None


def entry_for(klp: Klp, sym: Symbol) -> Symbol | None:
    """The function whose call reaches *sym*: itself, or for a livepatch's
    new_func the original function it replaces (None: nothing reaches it)."""
    mod = klp.kernel.modules.find_module(sym.owner.name)
    if mod is None or not mod.klp:
        return sym
    for ops in klp.ops.values():
        if not ops.fops.enabled:
            continue
        for func in _live_funcs(ops):
            if func.new_func is sym:
                old: Symbol = ops.old_func
                return old
    return None


def _helper_reached(klp: Klp, sym: Symbol) -> bool:
    for patch in klp.patches:
        for obj in patch.obj_list:
            if any(func.new_func is sym for func in obj.func_list):
                return False  # a new_func: only entry_for() decides
    return any(p.enabled and p.mod.name == sym.owner.name for p in klp.patches)


def effective_target(system: System, sym: Symbol, follow: bool = True) -> Symbol | None:
    """Whose body a call of *sym* runs, read off the call site without making
    the call (tasks are assumed out of any transition): the last regs->ip
    writer among the list handlers wins (a livepatch, or an override whose
    target is just_return_func); then a trampoline may skip the call
    (nonzero fmod_ret: None) or, without ORIG_STACK, call the original body.
    fail_function is left out: whether it injects is up to should_fail().
    *follow*: go on through the call site of the function redirected to
    (False: where the redirect enters, the new function's entry)."""
    klp, bpf, kprobes = system.klp, system.bpf, system.kprobes
    ip = sym
    for ops in system.ftrace.ops_on(sym):
        if kprobes is not None and ops in (kprobes.ftrace_ops, kprobes.ipmodify_ops):
            # kprobe_ftrace_handler() runs the probe at the address whichever
            # of the two ops its aggregate was armed on.
            for link in bpf.links.values():
                if (
                    link.kind is LinkKind.KPROBE
                    and link.override is not None
                    and link.target is sym
                    and any(kprobes.armed_on(kp) is ops for kp in link.kprobes)
                ):
                    ip = system.error_injection.just_return_func
        elif ops is bpf.fprobe.ops:
            for link in bpf.links.values():
                if (
                    link.kind is LinkKind.KPROBE_MULTI
                    and link.override is not None
                    and sym in link.targets
                ):
                    ip = system.error_injection.just_return_func
        elif (kops := klp.ops.get(sym)) is not None and kops is ops.private:
            live = _live_funcs(kops)
            if live and live[0].new_func is not None:  # a non-nop func has one
                ip = live[0].new_func
    tr = bpf.trampolines.get(sym)
    if (
        tr is not None
        and tr.fops.enabled
        and sym.fentry is not None
        and TrampolineFlag.CALL_ORIG in tr.flags
    ):
        if any(link.ret for link in tr.links[LinkKind.FMOD_RET]):
            return None
        if TrampolineFlag.ORIG_STACK not in tr.flags:
            return sym
    if follow and ip is not sym and ip.fentry is not None:
        return effective_target(system, ip)  # the new function's own call site
    return ip


def shadowed_by(system: System, link: BpfLink) -> BpfLink | None:
    """The BPF program that keeps *link*'s entry probe from running: a newer
    probe of the same aggregate whose program overrides the return
    (kprobe_perf_func() returns 1 when regs->ip changed, and
    aggr_pre_handler() stops there). fail_function's probe is left out:
    whether it injects is up to should_fail()."""
    kprobes, bpf = system.kprobes, system.bpf
    if kprobes is None or link.int3:
        return None
    owner = {id(kp): other for other in bpf.links.values() for kp in other.kprobes}
    for kp in link.kprobes:
        if kp.addr is None:
            continue
        ap = kprobes.get_kprobe(kp.addr, kp.addr_off)
        if ap is None or not ap.aggr or kp not in ap.list:
            continue
        for newer in ap.list[: ap.list.index(kp)]:
            other = owner.get(id(newer))
            if (
                other is not None
                and other.attached
                and other.kind is LinkKind.KPROBE
                and other.override is not None
                and not newer.disabled
            ):
                return other
    return None


def _health(system: System, link: BpfLink) -> Health:
    klp, kernel, bpf = system.klp, system.kernel, system.bpf
    for sym in link.targets:
        if sym.owner.name not in kernel.kallsyms.objects:
            return Health(link, "gone", f"{sym.owner.name} was unloaded")
    if link.kind in KPROBE_KINDS and not link.int3 and not any(k.registered for k in link.kprobes):
        return Health(link, "gone", "its kprobe was removed")
    if not bpf.is_armed(link):
        return Health(link, "silent", "not armed (kprobes or ftrace disabled)")
    shadow = shadowed_by(system, link)
    if shadow is not None:
        return Health(link, "silent", f"{shadow.name}, newer on the same kprobe, overrides first")
    why = ""
    for sym in link.targets:
        entry = entry_for(klp, sym)
        if entry is None:
            if _helper_reached(klp, sym):
                return Health(link, "active", "a helper of a patch in effect")
            why = why or f"no call reaches {sym.name}: its patch is not in effect"
            continue
        if link.kind is LinkKind.FMOD_RET:
            fmod_ret = system.bpf.trampolines[sym].links[LinkKind.FMOD_RET]
            first = next((lk for lk in fmod_ret if lk.ret), None)
            if first is not None and fmod_ret.index(first) < fmod_ret.index(link):
                # invoke_bpf_mod_ret(): a nonzero return skips the later ones
                return Health(link, "silent", f"fmod_ret {first.name} returns {first.ret} first")
        if entry is sym and not link.int3:
            return Health(link, "active", _note(system, link, sym))  # an entry hook
        runs = effective_target(system, entry, follow=link.int3)
        if runs is sym:
            return Health(link, "active", "" if link.int3 else _note(system, link, sym))
        what = "nothing" if runs is None else f"{runs.owner.name}:{runs.name}"
        if link.int3 and entry is sym:
            why = why or f"calls run {what}, not this body"
        else:
            why = why or f"calls of {entry.name} run {what}, never {sym.name}"
    return Health(link, "silent", why)


def _note(system: System, link: BpfLink, sym: Symbol) -> str:
    """What the program sees or achieves on a livepatched function."""
    klp, ftrace, bpf = system.klp, system.ftrace, system.bpf
    ops = redirect_of(klp, sym)
    tr = bpf.trampolines.get(sym)
    fmod = next((lk for lk in tr.links[LinkKind.FMOD_RET] if lk.ret), None) if tr else None
    if link.override is not None:
        if fmod is not None:
            return f"override lost: fmod_ret {fmod.name} returns {fmod.ret} first"
        if (
            tr is not None
            and TrampolineFlag.CALL_ORIG in tr.flags
            and TrampolineFlag.ORIG_STACK not in tr.flags
        ):
            return "override lost: the trampoline calls the original body"
        if ops is not None:
            order = ftrace.ops_on(sym)
            if link.kind is LinkKind.KPROBE_MULTI:
                mine = bpf.fprobe.ops
            else:
                kprobes = system.kprobes
                assert kprobes is not None  # a kprobe link needs them
                armed = [kprobes.armed_on(kp) for kp in link.kprobes]
                mine = next((o for o in armed if o is not None), kprobes.ftrace_ops)
            if mine in order and order.index(ops.fops) > order.index(mine):
                return f"override lost: {ops.fops.name} is older and runs after it"
            return f"override wins: {ops.fops.name} is newer and runs before it"
        return ""
    if link.kind is LinkKind.FMOD_RET and link.ret and ops is not None:
        return "skips the call: the livepatch never runs"
    if link.kind is not LinkKind.FMOD_RET and link.kind in TRAMP_KINDS | KPROBE_KINDS | MULTI_KINDS:
        runs = effective_target(system, sym)
        if runs is not sym:
            return f"reports {sym.name}; {next_call(system, sym, runs)}"
    return ""


def next_call(system: System, sym: Symbol, runs: Symbol | None) -> str:
    """What the next call of *sym* runs (effective_target()), in the words
    of the ``call`` verb: the body that runs, or who keeps every body from
    running."""
    if runs is None:
        tr = system.bpf.trampolines[sym]
        fmod = next(lk for lk in tr.links[LinkKind.FMOD_RET] if lk.ret)
        return f"calls run nothing: fmod_ret {fmod.name} returns {fmod.ret} and skips the call"
    if runs is system.error_injection.just_return_func:
        ovr = next(
            (
                lk
                for lk in system.bpf.links.values()
                if lk.override is not None and sym in lk.targets
            ),
            None,
        )
        who = f"override {ovr.name}" if ovr is not None else "an override"
        return f"calls run just_return_func: {who} wins, no body runs"
    return f"calls run {runs.owner.name}:{runs.name}"


def attachment_health(system: System) -> list[Health]:
    """Every attachment, in attach order."""
    return [_health(system, link) for link in system.bpf.links.values()]


def kprobe_health(system: System, kp: Kprobe) -> tuple[str, str]:
    """A kprobe's state without a BPF program (a kprobe_events probe), as
    :func:`_health` judges a kprobe link: (``active``/``silent``/``gone``, why).

    A probe at a function's entry (ftrace-based) fires whenever the function
    is called, even while a livepatch redirects it; one on a livepatch's
    new_func fires only while that func is live; one inside a body
    (int3) only while calls still run that body."""
    klp, kernel = system.klp, system.kernel
    sym = kp.addr
    if sym is None or not kp.registered:
        return "gone", "not registered"
    if sym.owner.name not in kernel.kallsyms.objects:
        return "gone", f"{sym.owner.name} was unloaded"
    if kp.disabled or not kp.armed:
        return "silent", "disabled or not armed"
    entry = entry_for(klp, sym)
    if entry is None:
        if _helper_reached(klp, sym):
            return "active", "a helper of a patch in effect"
        return "silent", f"no call reaches {sym.name}: its patch is not in effect"
    if kp.ftrace and entry is sym:
        ops = redirect_of(klp, sym)
        if ops is not None:
            new = _live_funcs(ops)[0].new_func
            if new is not None:
                return "active", f"reports {sym.name}; calls run {new.owner.name}:{new.name}"
        return "active", ""
    runs = effective_target(system, entry, follow=True)
    if runs is sym:
        return "active", ""
    what = "nothing" if runs is None else f"{runs.owner.name}:{runs.name}"
    return "silent", f"calls of {entry.name} run {what}, not this body"
