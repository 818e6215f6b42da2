"""Status views: which patches are loaded, who owns a function, who blocks.

Three views, in words close to what livepatch users already read on their
machines -- kpatch's ``kpatch list`` ("Loaded patch modules:", ``[enabled]``,
``[enabling...]``) and SUSE's ``klp status`` (``ready``/``in_progress``) and
``klp -vv blocking`` (the blocking threads and their stacks):

* :func:`format_status`: the patches in klp_patches order with their set,
  enabled, transition, replace and forced;
* :func:`format_func_stack`: one function's func_stack, top first, and the
  code a patched and an unpatched task run now;
* :func:`format_blocking`: the tasks that have not switched yet, why, and
  their stacks.

The views are plain data (:class:`PatchRow`, :class:`FuncStackView`,
:class:`BlockingView`) built here from a running System and, in
tools/status.py, from a host snapshot; both go through the same formatting.
A value a source cannot tell is None and shows as ``?``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from klpsim.livepatch.events import Blocker, TransitionTarget, function_label
from klpsim.livepatch.patch import klp_func_for_task
from klpsim.livepatch.structs import KLP_TRANSITION_PATCHED, KLP_TRANSITION_UNPATCHED
from klpsim.livepatch.transition import klp_task_blocker

if TYPE_CHECKING:
    from klpsim.kernel.symbols import Symbol
    from klpsim.livepatch.structs import KlpFunc, KlpPatch
    from klpsim.model.system import System

__all__ = [
    "PatchRow",
    "StatusView",
    "StackRow",
    "FuncStackView",
    "BlockingRow",
    "BlockingView",
    "blocker_text",
    "kpatch_state",
    "status_view",
    "func_stack_view",
    "blocking_view",
    "patched_functions",
    "format_status",
    "format_func_stack",
    "format_blocking",
]


class PatchRow(NamedTuple):
    """One patch of klp_patches (``/sys/kernel/livepatch/<patch>``)."""

    name: str
    enabled: bool | None
    transition: bool | None
    """It is klp_transition_patch."""
    replace_set: int | None
    """Its replace set; None on a kernel without sets."""
    replace: bool | int | None
    """patch->replace; None where the kernel (or the source) has none."""
    forced: bool | None
    """patch->forced: its module can never be removed (None: unknown; sysfs
    does not show it)."""


class StatusView(NamedTuple):
    """``klp_status``."""

    rows: tuple[PatchRow, ...]
    sets: bool
    """The kernel has replace sets (show the SET column)."""
    replace: bool
    """The kernel has a ``replace`` field (show the REPLACE column)."""
    order: str = ""
    """Where the order comes from, when it is not known to be klp_patches'."""


class StackRow(NamedTuple):
    """One klp_func on a func_stack."""

    patch: str
    replace_set: int | None
    code: str | None
    """Its new function, ``object:symbol`` (None: the source does not say)."""
    nop: bool | None
    """A nop of an atomic replace: the original runs (None: unknown)."""
    transition: bool
    """func->transition: its patch is in transition."""


class FuncStackView(NamedTuple):
    """``func_stack FUNC``."""

    function: str
    original: str
    """The original function, ``object:symbol``."""
    entries: tuple[StackRow, ...]
    """Top (newest) first."""
    patched: str
    """What a task in the patched state runs."""
    unpatched: str
    """What a task in the unpatched state runs."""
    note: str = ""


class BlockingRow(NamedTuple):
    """One task that has not switched yet."""

    pid: int
    comm: str
    why: str
    """blocker_text(), or what the source can tell."""
    stack: tuple[str, ...] | None
    """Its kernel stack, innermost frame first (None: not known)."""
    marked: tuple[int, ...] = ()
    """Indexes of the frames that keep it from switching."""


class BlockingView(NamedTuple):
    """``klp_blocking``."""

    patch: str | None
    """The transition patch (None: no transition)."""
    target: TransitionTarget | None
    tasks: tuple[BlockingRow, ...]
    note: str = ""


# -- words shared with the notes ------------------------------------------------------


def blocker_text(b: Blocker, patch: str, target: TransitionTarget) -> str:
    """Why one task blocks, as klp_blocking and the notes say it."""
    head = f"{b.pid} {b.comm}"
    if b.why == "sleeping":
        if target is TransitionTarget.PATCHED:
            verb = "reverts it (a nop)" if b.nop else "patches it"
        else:
            verb = "unpatches it"
        return f"{head}: {b.function} is on its stack ({b.code}); '{patch}' {verb}"
    if b.why == "running" and b.pid == 0:
        return f"{head}: the idle task, running; it switches in the idle loop"
    if b.why == "running":
        return f"{head}: running on a CPU; its stack cannot be checked while it runs"
    if b.why == "unreliable":
        return f"{head}: its stack trace is not reliable"
    return f"{head}: no reliable stack traces on this kernel; it switches only when it leaves the kernel"


def kpatch_state(enabled: bool | None, transition: bool | None) -> str:
    """``kpatch list``'s word for a patch."""
    if enabled is None:
        return "?"
    if enabled:
        return "enabling..." if transition else "enabled"
    return "disabling..." if transition else "disabled"


# -- from a running System ---------------------------------------------------------------


def status_view(system: System) -> StatusView:
    klp = system.klp
    policy = klp.policy
    has_replace = "replace" in policy.patch_fields
    rows = tuple(
        PatchRow(
            p.name,
            p.enabled,
            p is klp.transition_patch,
            policy.set_of(p),
            p.replace if has_replace else None,
            p.forced,
        )
        for p in klp.patches
    )
    return StatusView(rows, "replace_set" in policy.patch_fields, has_replace)


def _sym(sym: Symbol) -> str:
    return f"{sym.owner.name}:{sym.name}"


def _code(func: KlpFunc | None, original: Symbol) -> str:
    if func is None or func.nop or func.new_func is None:
        return f"{_sym(original)} (the original)"
    return _sym(func.new_func)


def _patch_of(func: KlpFunc) -> KlpPatch | None:
    return func.obj.patch if func.obj is not None else None


def patched_functions(system: System) -> list[Symbol]:
    """Every function with a func_stack, in the order klp_ops were made."""
    return list(system.klp.ops)


def func_stack_view(system: System, sym: Symbol) -> FuncStackView:
    """The func_stack of *sym* (klp_ops), and what each kind of task runs."""
    klp = system.klp
    label = function_label(None if sym.owner.name == "vmlinux" else sym.owner.name, sym.name)
    ops = klp.ops.get(sym)
    original = _sym(sym)
    if ops is None or not ops.func_stack:
        every = f"{original} (the original)"
        return FuncStackView(label, original, (), every, every, "not livepatched")
    entries = []
    for f in ops.func_stack:
        patch = _patch_of(f)
        entries.append(
            StackRow(
                patch.name if patch else "?",
                klp.policy.set_of(patch) if patch else None,
                None if f.nop or f.new_func is None else _sym(f.new_func),
                f.nop,
                f.transition,
            )
        )
    patched = _code(klp_func_for_task(ops, KLP_TRANSITION_PATCHED), sym)
    unpatched = _code(klp_func_for_task(ops, KLP_TRANSITION_UNPATCHED), sym)
    note = ""
    if not system.ftrace.ftrace_enabled:
        note = "ftrace is disabled (kernel.ftrace_enabled=0): no handler runs"
    return FuncStackView(label, original, tuple(entries), patched, unpatched, note)


def blocking_view(system: System) -> BlockingView:
    """The tasks the transition still waits for (klp_try_switch_task()'s view)."""
    klp = system.klp
    patch = klp.transition_patch
    if patch is None:
        return BlockingView(None, None, ())
    target = TransitionTarget(klp.target_state)
    rows = []
    for task in klp.kernel.sched.all_tasks():
        if task.patch_state == klp.target_state:
            continue
        b = klp_task_blocker(klp, task)
        if b is None:
            why = f"{task.pid} {task.comm}: not switched yet; nothing blocks it now"
        else:
            why = blocker_text(b, patch.name, target)
        frames = [_sym(s) if s.owner.name != "vmlinux" else s.name for s in reversed(task.stack)]
        marked = tuple(
            i for i, s in enumerate(reversed(task.stack)) if b is not None and b.code == _sym(s)
        )
        rows.append(BlockingRow(task.pid, task.comm, why, tuple(frames), marked))
    return BlockingView(patch.name, target, tuple(rows))


# -- formatting -------------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_status(view: StatusView) -> str:
    """klp_status: SUSE's ``klp status`` word, then kpatch's list as a table."""
    busy = [r for r in view.rows if r.transition]
    if busy:
        r = busy[0]
        verb = "patching" if r.enabled else "unpatching"
        lines = [f"status: in_progress ('{r.name}' {verb})"]
    elif any(r.transition is None for r in view.rows):
        lines = ["status: ?"]
    else:
        lines = ["status: ready"]
    if not view.rows:
        lines.append("Loaded patch modules: none")
        return "\n".join(lines) + "\n"
    if view.order:
        lines.append(f"Loaded patch modules (order: {view.order}):")
    else:
        lines.append("Loaded patch modules, in klp_patches order:")
    head = ["PATCH", "STATE"]
    if view.sets:
        head.append("SET")
    if view.replace:
        head.append("REPLACE")
    head += ["ENABLED", "TRANSITION", "FORCED"]
    table = [tuple(head)]
    for r in view.rows:
        cells = [r.name, f"[{kpatch_state(r.enabled, r.transition)}]"]
        if view.sets:
            cells.append(_cell(r.replace_set))
        if view.replace:
            cells.append(_cell(r.replace))
        cells += [_cell(r.enabled), _cell(r.transition), _cell(r.forced)]
        table.append(tuple(cells))
    lines += _table(table)
    return "\n".join(lines) + "\n"


def _who(patch: str, replace_set: int | None) -> str:
    return patch if replace_set is None else f"{patch} (set {replace_set})"


def format_func_stack(view: FuncStackView) -> str:
    """func_stack FUNC."""
    if not view.entries:
        lines = [f"func_stack of {view.function}: empty ({view.note})"]
        lines.append(f"every task runs {view.patched}")
        return "\n".join(lines) + "\n"
    lines = [f"func_stack of {view.function}, top first:"]
    table = []
    for i, e in enumerate(view.entries, 1):
        if e.nop:
            code = "nop (the original)"
        else:
            code = e.code if e.code is not None else f"new code of {e.patch}"
        table.append(
            (f"  {i}", _who(e.patch, e.replace_set), code, "in transition" if e.transition else "")
        )
    lines += _table(table)
    if view.patched == view.unpatched:
        lines.append(f"every task runs {view.patched}")
    else:
        lines.append(f"a patched task runs {view.patched}")
        lines.append(f"an unpatched task runs {view.unpatched}")
    if view.note:
        lines.append(view.note)
    return "\n".join(lines) + "\n"


def format_blocking(view: BlockingView) -> str:
    """klp_blocking: like ``klp -vv blocking``, each task with its stack."""
    if view.patch is None:
        text = "no transition in progress: nothing blocks"
        return text + (f" ({view.note})" if view.note else "") + "\n"
    assert view.target is not None  # set with the patch
    n = len(view.tasks)
    tasks = "1 task has" if n == 1 else f"{n} tasks have"
    lines = [f"'{view.patch}' is {view.target.verb}; {tasks} not switched"]
    if view.note:
        lines[0] += f" ({view.note})"
    for row in view.tasks:
        lines.append(row.why)
        if row.stack is None:
            lines.append("    stack: unknown")
            continue
        for i, frame in enumerate(row.stack):
            lines.append(f"  {'>' if i in row.marked else ' '} {frame}")
    return "\n".join(lines) + "\n"
