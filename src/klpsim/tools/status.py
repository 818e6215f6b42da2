"""``klpsim status``: the three status views of a scenario at a line, or of a host.

    klpsim status SCRIPT [--at LINE]     run SCRIPT up to LINE in the model
    klpsim status --snapshot SNAP        a host snapshot (klpsim snapshot,
                                         a sosreport or a supportconfig)

Both print klp_status, the func_stack of every patched function, and
klp_blocking, through model/status.py's formatting. A snapshot is read
as it is (the model does not boot from it): what it cannot tell shows as
``?``, and the func_stacks and blockers are derived from sysfs and the task
stacks as the comments below say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.livepatch.events import TransitionTarget, function_label
from klpsim.model.status import (
    BlockingRow,
    BlockingView,
    FuncStackView,
    PatchRow,
    StackRow,
    StatusView,
    blocking_view,
    format_blocking,
    format_func_stack,
    format_status,
    func_stack_view,
    patched_functions,
    status_view,
)

if TYPE_CHECKING:
    from klpsim.artifacts.snapshot import Livepatch, Snapshot
    from klpsim.model.system import System

__all__ = ["system_report", "snapshot_report", "snapshot_views"]


def _report(status: StatusView, stacks: list[FuncStackView], blocking: BlockingView) -> str:
    parts = [format_status(status)]
    parts += [format_func_stack(v) for v in stacks]
    parts.append(format_blocking(blocking))
    return "\n".join(parts)


def system_report(system: System) -> str:
    """The three views of a running System."""
    stacks = [func_stack_view(system, sym) for sym in patched_functions(system)]
    return _report(status_view(system), stacks, blocking_view(system))


# -- from a snapshot -------------------------------------------------------------------


def _known(value: object) -> object:
    from klpsim.artifacts.snapshot import Unknown

    return None if isinstance(value, Unknown) else value


def _patches(snap: Snapshot) -> tuple[Livepatch, ...]:
    from klpsim.artifacts.snapshot import Unknown

    return () if isinstance(snap.livepatches, Unknown) else snap.livepatches


def _row(lp: Livepatch) -> PatchRow:
    def flag(v: object) -> bool | None:
        k = _known(v)
        return None if k is None else bool(k)

    rs = _known(lp.replace_set)
    rp = _known(lp.replace)
    return PatchRow(
        lp.name,
        flag(lp.enabled),
        flag(lp.transition),
        rs if isinstance(rs, int) else None,
        rp if isinstance(rp, bool | int) else None,
        None,  # patch->forced: sysfs does not show it
    )


def _label(obj: str, func: str, sympos: int) -> str:
    return function_label(None if obj == "vmlinux" else obj, func, sympos)


def _func_stacks(snap: Snapshot, rows: dict[str, PatchRow]) -> list[FuncStackView]:
    """Each function's func_stack: the patches whose sysfs has its
    ``func,sympos`` directory, newest first (klp_patches order reversed).
    Sysfs does not say which entry is a nop nor name the new function."""
    stacks: dict[tuple[str, str, int], list[StackRow]] = {}
    for lp in _patches(snap):
        row = rows[lp.name]
        for obj in lp.objects:
            if obj.patched is False:
                continue  # its module is not loaded: not on any func_stack
            for f in obj.funcs:
                entry = StackRow(lp.name, row.replace_set, None, None, bool(row.transition))
                stacks.setdefault((obj.name, f.name, f.sympos), []).insert(0, entry)
    views = []
    for (objname, name, sympos), entries in stacks.items():
        original = f"{objname}:{name} (the original)"
        top = entries[0]
        patched = f"new code of {top.patch}"
        if top.transition:
            below = entries[1] if len(entries) > 1 else None
            unpatched = f"new code of {below.patch}" if below else original
        else:
            unpatched = patched
        views.append(
            FuncStackView(
                _label(objname, name, sympos),
                f"{objname}:{name}",
                tuple(entries),
                patched,
                unpatched,
            )
        )
    return views


def _blocking(snap: Snapshot, rows: dict[str, PatchRow]) -> BlockingView:
    """The threads whose patch_state is not the transition's target. A frame
    is marked when it is one of the functions the transition patch changes
    (by name and object) or code of a livepatch module: what
    klp_check_stack() would look for, as far as a stack's text can tell."""
    from klpsim.artifacts.snapshot import Unknown

    busy = [lp for lp in _patches(snap) if rows[lp.name].transition]
    if not busy:
        unknown = any(r.transition is None for r in rows.values())
        return BlockingView(None, None, (), "the snapshot does not say" if unknown else "")
    lp = busy[0]
    enabled = rows[lp.name].enabled
    if enabled is None:
        return BlockingView(lp.name, None, (), "its enabled state is unknown")
    target = TransitionTarget.PATCHED if enabled else TransitionTarget.UNPATCHED
    if isinstance(snap.tasks, Unknown):
        return BlockingView(lp.name, target, (), f"tasks unknown: {snap.tasks.reason}")
    changed = {(o.name, f.name) for o in lp.objects for f in o.funcs}
    klp_mods = {p.name for p in _patches(snap)}
    out = []
    unknown_states = 0
    for t in snap.tasks:
        ps = t.patch_state
        if isinstance(ps, Unknown):
            unknown_states += 1
            continue
        if ps == target.value:
            continue
        why = f"{t.tid} {t.comm}: patch_state {ps}, not switched"
        if isinstance(t.stack, Unknown):
            out.append(BlockingRow(t.tid, t.comm, why, None))
            continue
        frames = tuple(fr.text for fr in t.stack)
        marked = tuple(
            i
            for i, fr in enumerate(t.stack)
            if (fr.module or "vmlinux", fr.function) in changed or fr.module in klp_mods
        )
        if marked:
            fr = t.stack[marked[0]]
            why += f"; {fr.function} is on its stack"
        out.append(BlockingRow(t.tid, t.comm, why, frames, marked))
    note = f"{unknown_states} threads' patch_state unknown" if unknown_states else ""
    if snap.partial_tasks:
        note = "; ".join(x for x in (note, snap.partial_tasks) if x)
    return BlockingView(lp.name, target, tuple(out), note)


def snapshot_views(
    snap: Snapshot,
) -> tuple[StatusView, list[FuncStackView], BlockingView]:
    """The three views of a host snapshot."""
    patches = _patches(snap)
    rows = {lp.name: _row(lp) for lp in patches}
    order = "" if snap.patch_order.source == "stack_order" else snap.patch_order.detail
    status = StatusView(
        tuple(rows[lp.name] for lp in patches),
        any("replace_set" in lp.attributes for lp in patches),
        any("replace" in lp.attributes for lp in patches),
        order,
    )
    return status, _func_stacks(snap, rows), _blocking(snap, rows)


def snapshot_report(snap: Snapshot) -> str:
    """The three views of a host snapshot, as text."""
    head = f"snapshot {snap.source} ({snap.kind}), kernel {_known(snap.release) or '?'}\n"
    return head + _report(*snapshot_views(snap))
