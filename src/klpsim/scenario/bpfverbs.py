"""Verbs for BPF programs on (livepatched) functions.

In klpsim they drive the kernel's attach paths directly. In a real-kernel
guest (klpsim vm, klpsim diff) klpsim's own loader does them
(real/vm/bpftool.py): the same words, ``call`` only for what a caller there
can reach (a /proc show function, ``MOD:FUNC`` of a klpsim module behind
/proc/MOD/FUNC, ``__x64_sys_syncfs`` as syncfs(-1)) and without PID, and
``bpf_attachments`` without the model's STATE and NOTE columns. See
docs/bpf-and-livepatch.md.

``bpf_attach TYPE FUNC [--override RET] [--ret RET] [--name NAME]``
    Load and attach a program. TYPE: kprobe, kretprobe, kprobe_multi,
    kretprobe_multi, fentry, fexit, fmod_ret. FUNC: ``func``,
    ``module:func``, ``func+0xOFF`` (kprobe only) or, for the multi types, a
    comma-separated list. ``--override RET``: a kprobe/kprobe_multi program
    that calls bpf_override_return(ctx, RET). ``--ret RET``: what an
    fmod_ret program returns (default 0: let the call through). RET is a
    number or ``-EPERM`` style. Prints ``NAME: TYPE FUNC attached``; a
    refused attach prints the verifier's line (if any) and the errno on
    stderr, and the script goes on, as after a failing command.
``bpf_detach NAME``
    Close the link.
``bpf_attachments``
    Every attachment: type, target, program, hits, and whether calls still
    reach it: active, silent or gone.
``call FUNC [PID]``
    Call FUNC (``func`` or ``module:func``) from a task (the shell by
    default) and print which programs fired in order, which implementation
    ran (the original, a livepatch's new_func, just_return_func after an
    override, or nothing after fmod_ret) and the value returned.
"""

from collections.abc import Callable
from typing import Any

from klpsim.kernel import errno as errno_mod
from klpsim.kernel.errno import errno_name, strerror
from klpsim.scenario.simverbs import FUNC, PID, function, task
from klpsim.scenario.verbs import REGISTRY, Arg, Bound, Opt, checked_by
from klpsim.trace.bpf import AttachError
from klpsim.trace.events import (
    MULTI_KINDS,
    OVERRIDE_KINDS,
    CallPhase,
    FailFunctionInjected,
    LinkKind,
    ProgramRan,
)

__all__ = ["parse_ret", "parse_target"]

FAMILY = "bpf"
KINDS = {k.value: k for k in LinkKind}


def bpf_verb(
    name: str, *args: Arg, **kw: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a BPF verb."""
    return REGISTRY.verb(name, FAMILY, *args, **kw)


def parse_ret(text: str) -> int:
    """A program's return or override value: a number (``0x`` hex too) or
    ``-EPERM`` style. ValueError if it is neither."""
    name = text.removeprefix("-")
    if name.startswith("E"):
        value = getattr(errno_mod, name, None)
        if isinstance(value, int):
            return -value if text.startswith("-") else value
        raise ValueError(f"unknown errno '{text}'")
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"expected a number or -EXXX, got '{text}'") from None


def parse_target(kind: LinkKind, spec: str) -> tuple[list[tuple[str | None, str]], int]:
    """FUNC of bpf_attach: ([(module or None, name)], offset). ValueError if bad."""
    parts = spec.split(",") if kind in MULTI_KINDS else [spec]
    funcs, offset = [], 0
    for part in parts:
        objname, _, name = part.rpartition(":")
        name, plus, off = name.partition("+")
        if plus:
            if kind not in (LinkKind.KPROBE, LinkKind.KRETPROBE):
                raise ValueError(f"{kind}: FUNC+OFFSET is for kprobes only")
            try:
                offset = int(off, 0)
            except ValueError:
                raise ValueError(f"bad offset in '{part}'") from None
        if not name or not all(c.isalnum() or c in "_." for c in name):
            raise ValueError(f"bad function '{part}'")
        funcs.append((objname or None, name))
    return funcs, offset


def _type_error(word: str) -> str | None:
    return None if word in KINDS else f"unknown type '{word}' (one of {', '.join(KINDS)})"


def _name_error(word: str) -> str | None:
    return None if word.isidentifier() else f"bad name '{word}'"


def _attach_error(b: Bound) -> str | None:
    """What only the words together show."""
    kind = KINDS[b.args["TYPE"][0]]
    if "--override" in b.opts and kind not in OVERRIDE_KINDS:
        return "bpf_attach: --override is for kprobe and kprobe_multi programs"
    if "--ret" in b.opts and kind is not LinkKind.FMOD_RET:
        return "bpf_attach: --ret is for fmod_ret programs"
    try:
        parse_target(kind, b.args["FUNC"][0])
    except ValueError as e:
        return f"bpf_attach: {e}"
    return None


RET = Arg("RET", check=checked_by(parse_ret))


@bpf_verb(
    "bpf_attach",
    Arg("TYPE", check=_type_error),
    Arg("FUNC"),
    opts=(Opt("--override", RET), Opt("--ret", RET), Opt("--name", Arg("NAME", check=_name_error))),
    check=_attach_error,
)
def bpf_attach(rt, kind_name: str, func: str, *opts: str) -> None:
    kind = KINDS[kind_name]
    values = dict(zip(opts[::2], opts[1::2], strict=True))
    override = parse_ret(values["--override"]) if "--override" in values else None
    ret = parse_ret(values.get("--ret", "0"))
    name = values.get("--name")
    bpf = rt.system.bpf
    if name is not None and name in bpf.links:
        rt.stderr(f"bpf_attach: --name: '{name}' is attached already\n")
        return
    funcs, offset = parse_target(kind, func)
    try:
        link = bpf.attach(kind, funcs, offset, override, ret, name)
    except AttachError as e:
        for line in e.log:
            rt.stderr(f"bpf_attach: verifier: {line}\n")
        rt.stderr(f"bpf_attach: {kind} {func}: {strerror(e.errno)} ({errno_name(e.errno)})\n")
        return
    rt.stdout(f"{link.name}: {kind} {link.where()} attached\n")


@bpf_verb("bpf_detach", Arg("NAME"))
def bpf_detach(rt, name: str) -> None:
    link = rt.system.bpf.links.get(name)
    if link is None:
        rt.stderr(f"bpf_detach: no attachment '{name}'\n")
        return
    rt.system.bpf.detach(link)
    rt.stdout(f"{name}: detached\n")


def _program(link) -> str:
    if link.override is not None:
        return f"override {link.override}"
    if link.kind is LinkKind.FMOD_RET:
        return f"returns {link.ret}"
    return "-"


@bpf_verb("bpf_attachments")
def bpf_attachments(rt) -> None:
    from klpsim.model.health import attachment_health  # only this verb needs it

    rows = [("NAME", "TYPE", "TARGET", "PROGRAM", "HITS", "STATE", "NOTE")]
    for h in attachment_health(rt.system):
        link = h.link
        rows.append(
            (
                link.name,
                str(link.kind),
                link.where(),
                _program(link),
                str(link.hits),
                h.state,
                h.note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(6)] + [r[6]]
        rt.stdout("  ".join(cells).rstrip() + "\n")


def _ran(rt, sym, target) -> str:
    if target is None:
        return "ran nothing: the trampoline skipped the call"
    if target is rt.system.error_injection.just_return_func:
        return "ran just_return_func: overridden, no body ran"
    where = f"{target.owner.name}:{target.name}"
    if target is sym:
        return f"ran {where} (the original)"
    mod = rt.kernel.modules.find_module(target.owner.name)
    if mod is not None and mod.klp:
        return f"ran {where} (new_func of livepatch {mod.name})"
    return f"ran {where}"


@bpf_verb("call", FUNC, Arg("PID", check=PID.check, optional=True))
def call(rt, func: str, pid: str | None = None) -> None:
    t = task(rt, pid) if pid else rt.kernel.sched.current
    sym = function(rt, func)
    with rt.system.events.capture() as events:
        target, result = rt.kernel.invoke(t, sym, [])
    traced = [e for e in events if isinstance(e, ProgramRan | FailFunctionInjected)]

    def phase(e: ProgramRan | FailFunctionInjected) -> CallPhase:
        return e.phase if isinstance(e, ProgramRan) else CallPhase.ENTRY

    out = [f"call {func} from {t.comm}:{t.pid}"]
    out += [f"  {e}" for e in traced if phase(e) is CallPhase.ENTRY]
    out.append(f"  {_ran(rt, sym, target)}")
    out += [f"  {e}" for e in traced if phase(e) is CallPhase.BODY]
    out += [f"  {e}" for e in traced if phase(e) is CallPhase.EXIT]
    out.append(f"  returned {result}")
    rt.stdout("".join(line + "\n" for line in out))
