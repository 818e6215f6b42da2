"""Boot the model into a host snapshot (artifacts/snapshot.py).

:func:`restore` turns a booted :class:`~klpsim.session.Session` into the
host the snapshot was taken on, through the model's own code paths:

* the kernel takes the snapshot's kallsyms as its symbol table, and every
  module it lists except the livepatches is loaded at boot with its names
  (model/system.py boot());
* each livepatch in ``/sys/kernel/livepatch`` is loaded by the module
  loader, in klp_patches order, and enables itself (klp_enable_patch());
  the transition runs to its end before the next one, as on a host where
  each load waited for its transition;
* every thread of the snapshot becomes a task with its comm, kthread-ness
  and stack (frames named by kallsyms: vmlinux, modules, a livepatch's
  new functions);
* a transition in progress on the host is started by the same loader (or by
  writing 0 to ``enabled`` for an unpatching), after the tasks exist; the
  per-task ``patch_state`` the host showed is then set explicitly, since no
  code path reaches "this task switched, that one did not" on demand, and
  the invariants are checked afterwards (model/checker.py);
* each kprobe of ``kprobes/list`` is created through kprobe_events and
  enabled unless the list shows it DISABLED.

What the snapshot cannot tell is never guessed. A task whose stack is
unknown (unreadable without root) gets ``task->reliable = false``: the
model's klp_check_stack() fails for it as for an unreliable stack trace, so
it blocks every transition: a plan says "may block". A patch without its
``.ko`` is rebuilt from sysfs alone: its functions (old_name, sympos) and
``replace``/``replace_set`` where the kernel shows them; its states and the
names of its new functions are unknown (each says so in :attr:`HostBoot.unknowns`).

The profile comes from the sysfs attributes present or, with no patch
loaded, from ``uname -r`` (:func:`choose_profile`, docs/plan.md).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from klpsim.artifacts.ko import KoError, LivepatchModule, PlainModule, read_module_bytes
from klpsim.artifacts.snapshot import Livepatch, Snapshot, SnapshotError, Task, Unknown
from klpsim.artifacts.tracefs import parse_enabled_functions
from klpsim.kernel.errno import errno_name
from klpsim.kernel.module import ModuleSpec
from klpsim.kernel.symbols import Symbol
from klpsim.livepatch.profiles import Profile
from klpsim.livepatch.structs import KLP_TRANSITION_IDLE
from klpsim.livepatch.transition import SIGNALS_TIMEOUT
from klpsim.model.schema import FuncDef, LivepatchDef, ObjectDef
from klpsim.modules.definition import build_module
from klpsim.modules.kofile import ko_definition
from klpsim.trace.bpf import AttachError
from klpsim.trace.events import LinkKind

if TYPE_CHECKING:
    from klpsim.session import Session

__all__ = ["HostBoot", "HostBootError", "choose_profile", "restore", "host_patch_def"]

SETTLE_STEP_NS = 100_000_000
SETTLE_STEPS = 600


class HostBootError(Exception):
    """A snapshot the model cannot boot into: one line naming the file (exit 2)."""


@dataclass
class HostBoot:
    """What booting into a snapshot did, and what it could not know."""

    source: str
    profile: str
    profile_why: str
    patches: list[LivepatchDef] = field(default_factory=list)
    """The host's livepatches as the model loaded them, in klp_patches order."""
    from_ko: dict[str, bool] = field(default_factory=dict)
    """For each patch: built from its .ko (True) or from sysfs alone (False)."""
    unknowns: list[str] = field(default_factory=list)
    """What the snapshot cannot tell, and how the model treats it."""
    unknown_stacks: list[int] = field(default_factory=list)
    """Tasks (tids) whose stack is unknown: they may block any transition."""
    notes: list[str] = field(default_factory=list)
    """Facts derived rather than read."""
    kprobes: list[str] = field(default_factory=list)
    """The kprobe_events lines that recreated the snapshot's kprobes."""
    bpf: list[str] = field(default_factory=list)
    """The BPF links (fentry) that stand for the snapshot's BPF trampolines."""
    tasks: int = 0


# -- the profile -----------------------------------------------------------------------

_VERSION = re.compile(r"(\d+)\.(\d+)")


def choose_profile(snap: Snapshot) -> tuple[str, str]:
    """The profile a snapshot's kernel behaves as, and why.

    The attributes of a loaded patch say it best: ``replace_set`` exists only
    with the replace-set series; ``stack_order`` came with 6.14 (mainline:
    the 7.1 profile); ``replace`` with 6.11 (the 6.12 profile); neither: 6.1.
    Without a patch, ``uname -r``: a ``klpsim-rs`` local version is the
    project's replace-set kernel; else by version as above.
    """
    patches = () if isinstance(snap.livepatches, Unknown) else snap.livepatches
    attrs: set[str] = set()
    for p in patches:
        attrs |= p.attributes
    if patches:
        if "replace_set" in attrs:
            return "replace-set", "sysfs: the patches have a replace_set attribute"
        if "stack_order" in attrs:
            return "7.1", "sysfs: the patches have stack_order (6.14+) and no replace_set"
        if "replace" in attrs:
            return "6.12", "sysfs: the patches have replace (6.11+) but no stack_order"
        return "6.1", "sysfs: the patches have neither replace nor stack_order (before 6.11)"
    release = snap.release
    if isinstance(release, Unknown):
        raise HostBootError(
            f"{snap.source}: no livepatch and no uname -r ({release.reason}): "
            "give the profile with --kernel"
        )
    if "klpsim-rs" in release:
        return "replace-set", f"uname -r {release}: the project's replace-set kernel"
    m = _VERSION.match(release)
    if m is None:
        raise HostBootError(f"{snap.source}: uname -r {release!r}: no version; use --kernel")
    version = (int(m[1]), int(m[2]))
    if version >= (6, 14):
        return "7.1", f"uname -r {release}: 6.14 or later (stack_order)"
    if version >= (6, 11):
        return "6.12", f"uname -r {release}: 6.11 to 6.13 (replace, no stack_order)"
    return "6.1", f"uname -r {release}: before 6.11 (no replace attribute)"


# -- the patches -------------------------------------------------------------------------


def host_patch_def(
    snap: Snapshot, lp: Livepatch, profile: Profile, unknowns: list[str]
) -> tuple[LivepatchDef, bool]:
    """The definition of a host patch: from its .ko when the snapshot has it,
    sysfs's values of replace/replace_set winning; else from sysfs alone."""
    replace = lp.replace if isinstance(lp.replace, bool) else None
    replace_set = lp.replace_set if isinstance(lp.replace_set, int) else None
    ko = snap.ko(lp.name)
    why = "no .ko in the snapshot"
    if ko is not None:
        try:
            m: LivepatchModule | PlainModule | None = read_module_bytes(ko.path, ko.decompressed())
        except (KoError, SnapshotError) as e:
            m, why = None, f"its .ko is unreadable ({e})"
        if isinstance(m, PlainModule):
            m, why = None, f"/{ko.path} is not a livepatch module"
        if m is not None:
            d = ko_definition(m, profile, replace, replace_set)
            ko_funcs = {(o.name, f.old_name, f.old_sympos or 1) for o in d.objects for f in o.funcs}
            sys_funcs = {(o.name, f.name, f.sympos) for o in lp.objects for f in o.funcs}
            if ko_funcs == sys_funcs:
                return dataclasses.replace(d, name=lp.name), True
            why = f"/{ko.path} patches other functions than sysfs shows (another build)"
    objects = []
    for obj in lp.objects:
        funcs = []
        for i, f in enumerate(obj.funcs):
            sympos = f.sympos
            if sympos == 1 and _unique(snap, obj.name, f.name):
                sympos = 0  # sysfs shows 1 for 0; the only symbol either way
            funcs.append(FuncDef(f.name, f"{f.name}.klp{i}", sympos, None, 0))
        objects.append(ObjectDef(obj.name, tuple(funcs)))
    unknowns.append(
        f"{lp.name}: {why}: its states and new function names are unknown (taken as: no states)"
    )
    if replace is None and "replace" in profile.patch_fields:
        unknowns.append(f"{lp.name}: replace unknown without its .ko (taken as 0)")
    return (
        LivepatchDef(
            name=lp.name,
            source=f"{snap.source}: /sys/kernel/livepatch/{lp.name}",
            objects=tuple(objects),
            states=(),
            replace=bool(replace),
            replace_set=replace_set or 0,
            replaceable=False,
            error_injection=(),
        ),
        False,
    )


def _unique(snap: Snapshot, obj: str, name: str) -> bool:
    syms = snap.kallsyms
    if isinstance(syms, Unknown):
        return False
    return len(syms.find(name, None if obj == "vmlinux" else obj)) == 1


# -- restoring -----------------------------------------------------------------------------


def restore(session: Session, snap: Snapshot, profile_why: str = "") -> HostBoot:
    """Make *session*'s kernel the snapshot's host (see the module docstring)."""
    kernel = session.kernel
    klp = session.klp
    profile = session.system.profile
    host = HostBoot(snap.source, profile.name, profile_why)
    host.unknowns += list(snap.missing)
    patches = [] if isinstance(snap.livepatches, Unknown) else list(snap.livepatches)
    tasks = [] if isinstance(snap.tasks, Unknown) else list(snap.tasks)
    if isinstance(snap.tasks, Unknown):
        host.unknowns.append(f"tasks: {snap.tasks.reason} (no task can be said to block)")
    _clear_boot_tasks(session, {t.tid for t in tasks})

    specs: list[tuple[Livepatch, ModuleSpec]] = []
    for lp in patches:
        d, from_ko = host_patch_def(snap, lp, profile, host.unknowns)
        host.patches.append(d)
        host.from_ko[lp.name] = from_ko
        specs.append((lp, build_module(d, profile)))

    in_transition = [lp for lp, _ in specs if lp.transition is True]
    if len(in_transition) > 1:
        raise HostBootError(
            f"{snap.source}: {len(in_transition)} patches in transition "
            f"({', '.join(p.name for p in in_transition)}): the kernel allows one"
        )
    moving = in_transition[0] if in_transition else None
    for lp, spec in specs:
        if lp is moving and lp.enabled is not False:
            continue  # loaded after the tasks exist
        _load(session, snap, lp.name, spec)
        _settle(session)
    host.tasks = _spawn_tasks(session, tasks, host)
    if moving is not None:
        if moving.enabled is False:  # unpatching: the patch was disabled
            ret = kernel.fs.write(f"/sys/kernel/livepatch/{moving.name}/enabled", "0")
            if ret < 0:
                raise HostBootError(
                    f"{snap.source}: disabling {moving.name} fails in the model "
                    f"(-{errno_name(ret)})"
                )
        else:
            _load(session, snap, moving.name, dict((p.name, s) for p, s in specs)[moving.name])
        _set_task_states(session, tasks, moving, host)
        if klp.transition_patch is not None:
            # How long it has run is not in a snapshot: taken as past its first
            # signals (klp_send_signals() logs only those, at 15 retries).
            klp.signals_cnt = SIGNALS_TIMEOUT + 1
            host.unknowns.append(
                f"{moving.name}: how long its transition has run (taken as over 15 s: "
                "the first signals sent, and logged, already)"
            )
    for lp, _ in specs:
        if lp is not moving and lp.enabled is False:
            host.unknowns.append(f"{lp.name}: disabled but not in transition (taken as enabled)")
    if klp.transition_patch is None and moving is not None:
        host.notes.append(
            f"{moving.name}: in transition on the host; in the model every task could switch"
        )
    _kprobes(session, snap, host)
    _bpf_trampolines(session, snap, host)
    _other_ftrace_users(session, snap, host)
    from klpsim.model.checker import Checker

    violations = Checker(klp).after()
    if violations:
        v = violations[0]
        raise HostBootError(
            f"{snap.source}: the host's state breaks the model's invariant "
            f"{v.invariant}: {v.detail}"
        )
    return host


def _load(session: Session, snap: Snapshot, name: str, spec: ModuleSpec) -> None:
    kernel = session.kernel
    start = len(kernel.log.records)
    ret = kernel.modules.load_module(spec, [])
    if ret:
        logged = [r.text for r in kernel.log.records[start:]]
        raise HostBootError(
            f"{snap.source}: the host's livepatch {name} does not load in the model "
            f"(-{errno_name(ret)}): {logged[-1] if logged else 'no log'}"
        )


def _settle(session: Session) -> None:
    clock = session.kernel.clock
    for _ in range(SETTLE_STEPS):
        if session.klp.transition_patch is None:
            break
        clock.advance(SETTLE_STEP_NS)
    clock.advance(1_000_000)


def _clear_boot_tasks(session: Session, host_pids: set[int]) -> None:
    """The model's own boot tasks give way to the host's; the shell that runs
    the script stays, on a pid the host does not use."""
    kernel = session.kernel
    sched = kernel.sched
    shell = sched.current
    for t in list(sched.tasks.values()):
        if t is not shell:
            kernel.exit_task(t)
    if shell.pid in host_pids:
        new = max(host_pids) + 1
        sched.tasks.pop(shell.pid)
        kernel.fs.remove(f"/proc/{shell.pid}")
        shell.pid = new
        sched.tasks[new] = shell
        sched.next_pid = max(sched.next_pid, new + 1)
        kernel._proc_pid(shell)


def _frame_symbol(session: Session, fn: str | None, module: str | None) -> Symbol | None:
    if fn is None:
        return None
    obj = session.kernel.kallsyms.objects.get(module or "vmlinux")
    if obj is None:
        return None
    found = obj.find(fn)
    if not found and module is not None and module in session.klp.kernel.modules.modules:
        # a livepatch's new function: ko_definition() may have suffixed its name
        found = [s for s in obj.symbols if s.name.split("#", 1)[0] == fn]
    return found[0] if found else None


def _spawn_tasks(session: Session, tasks: list[Task], host: HostBoot) -> int:
    """Each host thread as a model task. A frame in a livepatch module built
    without its .ko cannot be named: that stack is unknown too."""
    kernel = session.kernel
    lp_modules = {d.name for d in host.patches if not host.from_ko[d.name]}
    unnamed = 0
    for t in tasks:
        kthread = t.kthread if isinstance(t.kthread, bool) else False
        task = kernel.spawn(t.comm, kthread=kthread, pid=t.tid)
        task.freezable = kthread and t.comm.startswith(("kworker", "ksoftirqd"))
        task.patch_state = KLP_TRANSITION_IDLE
        if isinstance(t.stack, Unknown):
            task.reliable = False
            host.unknown_stacks.append(t.tid)
            continue
        stack: list[Symbol] = []
        for f in reversed(t.stack):  # the model keeps the outermost first
            sym = _frame_symbol(session, f.function, f.module)
            if sym is not None:
                stack.append(sym)
            elif f.module in lp_modules:
                task.reliable = False
        if not task.reliable:
            host.unknown_stacks.append(t.tid)
            unnamed += 1
        task.stack = stack
    if unnamed:
        host.unknowns.append(
            f"stacks of {unnamed} tasks: a frame in a livepatch without its .ko "
            "(taken as: may block)"
        )
    return len(tasks)


def _set_task_states(
    session: Session, tasks: list[Task], moving: Livepatch, host: HostBoot
) -> None:
    """The host's per-task patch_state in the transition it was in."""
    klp = session.klp
    if klp.transition_patch is None:
        return
    target = klp.target_state
    sched = session.kernel.sched
    unknown = 0
    for t in tasks:
        task = sched.tasks.get(t.tid)
        if task is None:
            continue
        if isinstance(t.patch_state, Unknown) or t.patch_state not in (0, 1):
            unknown += 1
            continue
        task.patch_state = t.patch_state
        task.patch_pending = t.patch_state != target
    if unknown:
        host.unknowns.append(
            f"patch_state of {unknown} tasks during {moving.name}'s transition "
            "(taken as the model's own)"
        )


def _kprobes(session: Session, snap: Snapshot, host: HostBoot) -> None:
    if isinstance(snap.kprobes, Unknown):
        return
    fs = session.kernel.fs
    tk = session.system.trace_kprobes
    for i, kp in enumerate(snap.kprobes):
        if kp.symbol is None:
            host.unknowns.append(f"kprobe at a raw address: {kp.text} (not recreated)")
            continue
        if tk is None:
            host.unknowns.append(f"kprobe {kp.text}: no kprobe_events in this profile")
            continue
        where = f"{kp.module}:{kp.symbol}" if kp.module else kp.symbol
        off = f"+{kp.offset}" if kp.offset else ""
        event = f"snap_{i}"
        line = f"{'r' if kp.kind == 'r' else 'p'}:klpsim/{event} {where}{off}"
        ret = fs.write("/sys/kernel/tracing/kprobe_events", line + "\n", append=True)
        if ret < 0:
            host.unknowns.append(f"kprobe {kp.text}: the model refuses it (-{errno_name(ret)})")
            continue
        host.kprobes.append(line)
        if "DISABLED" not in kp.flags:
            fs.write(f"/sys/kernel/tracing/events/klpsim/{event}/enable", "1")


def _bpf_trampolines(session: Session, snap: Snapshot, host: HostBoot) -> None:
    """A direct call in enabled_functions is a BPF trampoline: an fentry
    program stands for it (the snapshot does not tell fentry from fexit or
    fmod_ret; the plan says so)."""
    if isinstance(snap.ftrace, Unknown):
        return
    bpf = session.system.bpf
    for rec in snap.ftrace:
        if "D" not in rec.flags:
            continue
        name = f"snap_bpf_{len(host.bpf)}"
        try:
            bpf.attach(LinkKind.FENTRY, [(rec.module, rec.function)], name=name)
        except AttachError as e:
            host.unknowns.append(
                f"BPF trampoline on {rec.function}: the model refuses it (-{errno_name(e.errno)})"
            )
            continue
        host.bpf.append(name)
    if host.bpf:
        host.unknowns.append(
            f"{len(host.bpf)} BPF trampoline(s) from enabled_functions: the program type "
            "(fentry, fexit, fmod_ret) is unknown (taken as fentry)"
        )


def _other_ftrace_users(session: Session, snap: Snapshot, host: HostBoot) -> None:
    """The ftrace users the model did not recreate (a function tracer,
    another module's ftrace_ops): each function whose enabled_functions
    count on the host is above the model's, after the patches, kprobes and
    BPF trampolines are in place."""
    if isinstance(snap.ftrace, Unknown):
        return
    text = session.kernel.fs.read("/sys/kernel/tracing/enabled_functions")
    mine = parse_enabled_functions(text) if isinstance(text, str) else []
    have = {(r.function, r.module): r.refcount for r in mine}
    for rec in snap.ftrace:
        n = have.get((rec.function, rec.module), 0)
        if rec.refcount > n:
            where = f"{rec.module}:{rec.function}" if rec.module else rec.function
            host.unknowns.append(
                f"ftrace: {where} has {rec.refcount} user(s) on the host, {n} in the model: "
                "the others (a tracer, another ftrace_ops) are not recreated"
            )
