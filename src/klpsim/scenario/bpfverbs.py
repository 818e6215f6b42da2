"""Simulator-only verbs for BPF programs on (livepatched) functions.

On a real machine these are a BPF loader (libbpf, bpftool) and a test
program; in klpsim they drive the kernel's attach paths directly. See
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

from klpsim.kernel import errno as errno_mod
from klpsim.kernel.errno import errno_name, strerror
from klpsim.model.health import attachment_health
from klpsim.scenario.parser import ScriptError
from klpsim.scenario.simverbs import _function, _task
from klpsim.trace.bpf import AttachError
from klpsim.trace.events import (
    MULTI_KINDS,
    CallPhase,
    FailFunctionInjected,
    LinkKind,
    ProgramRan,
)

__all__ = ["BPF_VERBS"]


def _fail(rt, msg: str) -> None:
    raise ScriptError(rt.path, rt.line, msg)


def _number(rt, opt: str, text: str) -> int:
    if text.lstrip("-").startswith("E"):
        value = getattr(errno_mod, text.lstrip("-"), None)
        if isinstance(value, int):
            return -value if text.startswith("-") else value
    try:
        return int(text, 0)
    except ValueError:
        _fail(rt, f"{opt}: expected a number or -EXXX, got '{text}'")


def _parse_func(rt, kind: LinkKind, spec: str) -> tuple[list[tuple[str | None, str]], int]:
    parts = spec.split(",") if kind in MULTI_KINDS else [spec]
    funcs, offset = [], 0
    for part in parts:
        objname, _, name = part.rpartition(":")
        name, plus, off = name.partition("+")
        if plus:
            if kind not in (LinkKind.KPROBE, LinkKind.KRETPROBE):
                _fail(rt, f"bpf_attach: {kind}: FUNC+OFFSET is for kprobes only")
            try:
                offset = int(off, 0)
            except ValueError:
                _fail(rt, f"bpf_attach: bad offset in '{part}'")
        if not name or not all(c.isalnum() or c in "_." for c in name):
            _fail(rt, f"bpf_attach: bad function '{part}'")
        funcs.append((objname or None, name))
    return funcs, offset


def bpf_attach(rt, kind_name: str, func: str, *opts: str) -> None:
    kinds = {k.value: k for k in LinkKind}
    if kind_name not in kinds:
        _fail(rt, f"bpf_attach: unknown type '{kind_name}' (one of {', '.join(kinds)})")
    kind = kinds[kind_name]
    override = None
    ret = 0
    name = None
    i = 0
    while i < len(opts):
        opt = opts[i]
        if opt not in ("--override", "--ret", "--name") or i + 1 >= len(opts):
            _fail(rt, f"bpf_attach: bad option '{opt}' (--override RET, --ret RET, --name NAME)")
        value = opts[i + 1]
        if opt == "--override":
            if kind not in (LinkKind.KPROBE, LinkKind.KPROBE_MULTI):
                _fail(rt, "bpf_attach: --override is for kprobe and kprobe_multi programs")
            override = _number(rt, opt, value)
        elif opt == "--ret":
            if kind is not LinkKind.FMOD_RET:
                _fail(rt, "bpf_attach: --ret is for fmod_ret programs")
            ret = _number(rt, opt, value)
        else:
            if not value.isidentifier():
                _fail(rt, f"bpf_attach: --name: bad name '{value}'")
            if value in rt.system.bpf.links:
                _fail(rt, f"bpf_attach: --name: '{value}' is attached already")
            name = value
        i += 2
    funcs, offset = _parse_func(rt, kind, func)
    bpf = rt.system.bpf
    try:
        link = bpf.attach(kind, funcs, offset, override, ret, name)
    except AttachError as e:
        for line in e.log:
            rt.stderr(f"bpf_attach: verifier: {line}\n")
        rt.stderr(f"bpf_attach: {kind} {func}: {strerror(e.errno)} ({errno_name(e.errno)})\n")
        return
    rt.stdout(f"{link.name}: {kind} {link.where()} attached\n")


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


def bpf_attachments(rt) -> None:
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


def call(rt, func: str, pid: str | None = None) -> None:
    task = _task(rt, pid) if pid else rt.kernel.sched.current
    sym = _function(rt, func)
    with rt.system.events.capture() as events:
        target, result = rt.kernel.invoke(task, sym, [])
    out = [f"call {func} from {task.comm}:{task.pid}"]

    traced = [e for e in events if isinstance(e, ProgramRan | FailFunctionInjected)]

    def phase(e: ProgramRan | FailFunctionInjected) -> CallPhase:
        return e.phase if isinstance(e, ProgramRan) else CallPhase.ENTRY

    out += [f"  {e}" for e in traced if phase(e) is CallPhase.ENTRY]
    out.append(f"  {_ran(rt, sym, target)}")
    out += [f"  {e}" for e in traced if phase(e) is CallPhase.BODY]
    out += [f"  {e}" for e in traced if phase(e) is CallPhase.EXIT]
    out.append(f"  returned {result}")
    rt.stdout("".join(line + "\n" for line in out))


BPF_VERBS = {
    "bpf_attach": bpf_attach,
    "bpf_detach": bpf_detach,
    "bpf_attachments": bpf_attachments,
    "call": call,
}
