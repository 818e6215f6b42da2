"""``klpsim run --timeline``: each patch's life and each transition, on the
simulated clock, read from the model's event log (model/events.py).

A patch's life: loaded (klp_enable_patch() took it), refused, patched,
disabled, unpatched, replaced (by whom), forced, freed. A transition: from
klp_start_transition() to klp_complete_transition(), its duration, and the
tasks that blocked it after the first try, each from the first retry that
found it blocking until the first one that did not (or the completion).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from klpsim.kernel.errno import errno_name
from klpsim.livepatch.events import (
    PatchEnabled,
    PatchesReplaced,
    PatchFreed,
    PatchRefused,
    TransitionBlocked,
    TransitionEvent,
    TransitionForced,
    TransitionPhase,
    TransitionTarget,
    When,
)
from klpsim.model.events import Stamped

__all__ = ["Transition", "BlockedSpan", "PatchLife", "collect", "render"]


class BlockedSpan(NamedTuple):
    """One task that blocked a transition, and for how long."""

    pid: int
    comm: str
    function: str | None
    why: str
    start_ns: int
    end_ns: int


class Transition(NamedTuple):
    patch: str
    target: TransitionTarget
    start_ns: int
    end_ns: int | None
    """None: still running when the script ended."""
    blocked: tuple[BlockedSpan, ...]
    reversed_ns: int | None = None
    forced_ns: int | None = None


class PatchLife(NamedTuple):
    name: str
    replace_set: int | None
    steps: tuple[tuple[int, str], ...]
    """(time, what) in order."""


def _s(ns: int) -> str:
    return f"{ns / 1e9:.3f}"


class _Open:
    """The transition being read."""

    def __init__(self, patch: str, target: TransitionTarget, start: int):
        self.patch = patch
        self.target = target
        self.start = start
        self.blocked: list[BlockedSpan] = []
        self.open: dict[int, BlockedSpan] = {}
        self.reversed: int | None = None
        self.forced: int | None = None

    def close(self, ts: int, done: bool) -> Transition:
        spans = self.blocked + [sp._replace(end_ns=ts) for sp in self.open.values()]
        return Transition(
            self.patch,
            self.target,
            self.start,
            ts if done else None,
            tuple(sorted(spans, key=lambda sp: (sp.start_ns, sp.pid))),
            self.reversed,
            self.forced,
        )

    def blocked_by(self, ts: int, e: TransitionBlocked) -> None:
        if ts <= self.start:
            return  # the first try is not a stall
        now = {b.pid: b for b in e.blockers}
        for pid in list(self.open):
            if pid not in now:
                self.blocked.append(self.open.pop(pid)._replace(end_ns=ts))
        for pid, b in now.items():
            if pid not in self.open:
                self.open[pid] = BlockedSpan(pid, b.comm, b.function, b.why, ts, ts)


def collect(
    records: Iterable[Stamped], end_ns: int | None = None
) -> tuple[list[PatchLife], list[Transition]]:
    """The patches (in the order they first appear) and the transitions;
    a transition still running is cut at *end_ns* (default: the last event)."""
    steps: dict[str, list[tuple[int, str]]] = {}
    sets: dict[str, int | None] = {}
    transitions: list[Transition] = []
    current: _Open | None = None

    def step(patch: str, ts: int, what: str) -> None:
        steps.setdefault(patch, []).append((ts, what))

    last_ts = 0
    for rec in records:
        ts, e = rec.ts_ns, rec.event
        last_ts = ts
        if isinstance(e, TransitionEvent):
            if e.phase is TransitionPhase.INIT:
                step(e.patch, ts, "loaded" if e.target is TransitionTarget.PATCHED else "disabled")
            elif e.phase is TransitionPhase.START and current is None:
                current = _Open(e.patch, e.target, ts)
            elif e.phase is TransitionPhase.REVERSE and current is not None:
                current.reversed = ts
                current.target = e.target
                step(e.patch, ts, f"reversed to {e.target.verb}")
            elif e.phase is TransitionPhase.COMPLETE and e.when is When.AFTER:
                word = "patched" if e.target is TransitionTarget.PATCHED else "unpatched"
                step(e.patch, ts, word)
                if current is not None:
                    transitions.append(current.close(ts, True))
                    current = None
        elif isinstance(e, PatchEnabled):
            sets[e.patch] = e.replace_set
        elif isinstance(e, PatchRefused):
            sets.setdefault(e.patch, e.replace_set)
            what = "refused" if e.replace_set is None else f"refused as set {e.replace_set}"
            step(e.patch, ts, f"{what} (-{errno_name(e.errno)})")
        elif isinstance(e, PatchesReplaced):
            for old in e.replaced:
                step(old, ts, f"replaced by {e.patch}")
        elif isinstance(e, TransitionForced):
            step(e.patch, ts, "forced")
            if current is not None:
                current.forced = ts
        elif isinstance(e, PatchFreed):
            step(e.patch, ts, "freed")
        elif isinstance(e, TransitionBlocked) and current is not None:
            current.blocked_by(ts, e)
    if current is not None:
        transitions.append(current.close(last_ts if end_ns is None else end_ns, False))
    lives = [PatchLife(name, sets.get(name), tuple(s)) for name, s in steps.items()]
    return lives, transitions


def render(records: Iterable[Stamped], end_ns: int) -> str:
    """The timeline as text; *end_ns*: the clock when the script ended."""
    lives, transitions = collect(records, end_ns)
    lines = [f"timeline (simulated seconds; the script ended at {_s(end_ns)}):"]
    if not lives:
        lines.append("  no livepatch was loaded")
        return "\n".join(lines) + "\n"
    lines.append("patches:")
    width = max(len(life.name) for life in lives)
    for life in lives:
        label = life.name.ljust(width)
        tag = f"set {life.replace_set}" if life.replace_set is not None else ""
        what = ", ".join(f"{_s(t)} {w}" for t, w in life.steps)
        lines.append(f"  {label}  {tag:6} {what}".rstrip())
    if transitions:
        lines.append("transitions:")
        wide = max(len(_s(t.end_ns if t.end_ns is not None else end_ns)) for t in transitions)
        for t in transitions:
            end = t.end_ns if t.end_ns is not None else end_ns
            took = f"{(end - t.start_ns) / 1e9:.3f} s"
            span = f"{_s(t.start_ns).rjust(wide)} - {_s(end).rjust(wide)}"
            state = "" if t.end_ns is not None else "  (still running)"
            extra = ""
            if t.reversed_ns is not None:
                extra += f", reversed at {_s(t.reversed_ns)}"
            if t.forced_ns is not None:
                extra += f", forced at {_s(t.forced_ns)}"
            lines.append(f"  {span}  {took:>9}  {t.patch} {t.target.verb}{extra}{state}")
            for b in t.blocked:
                where = f" in {b.function}" if b.function else f" ({b.why})"
                lines.append(
                    f"      blocked {_s(b.start_ns)} - {_s(b.end_ns)} by {b.pid} {b.comm}{where}"
                )
    return "\n".join(lines) + "\n"
