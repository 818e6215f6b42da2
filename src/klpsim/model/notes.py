"""Notes: what the model knows and the kernel log does not say.

A refused load prints only "is not compatible with the already installed
livepatches"; a stalled transition prints nothing until a helper gives up.
The model knows why at every step. :class:`Notes` reads the typed events
(livepatch/events.py, trace/events.py) as they are logged and turns the ones
whose cause a user cannot see into one-line notes, which a transcript shows
as ``klpsim: note: ...`` (never ``--dmesg``, which stays the kernel's log):

* a refused patch: the rule, the function or state id, the other patch and
  its set (PatchRefused.conflict); or the symbol klp_find_object_symbol()
  could not resolve, its object and how many symbols of that name it has
  (PatchRefused.unresolved);
* a transition still waiting after a retry: each task that blocks it, with
  the patched or nop'ed function on its stack (TransitionBlocked). Cadence:
  the first retry that fails, then again only when the set of blockers
  (task, reason, function) changes -- not at every 1 s retry; the try that
  klp_enable_patch() itself makes is not a retry;
* a completed replace: the patches replaced, and which of their functions
  went back to the original code, were patched again by the new patch, or
  are kept by another patch (PatchesReplaced, shown after "patching
  complete");
* a forced transition: the modules that can never be removed now;
* a BPF attachment refused (AttachRefused.why), or attached silent, or
  that went silent or gone (model/health.py, checked when a transition
  completes and after each command).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from klpsim.kernel.errno import errno_name
from klpsim.livepatch.events import (
    Conflict,
    PatchEnabled,
    PatchesReplaced,
    PatchRefused,
    RefusalRule,
    TransitionBlocked,
    TransitionEvent,
    TransitionForced,
    TransitionPhase,
    Unresolved,
    When,
)
from klpsim.model.events import Stamped
from klpsim.model.status import blocker_text
from klpsim.trace.events import AttachRefused, LinkAttached, LinkDetached

if TYPE_CHECKING:
    from klpsim.model.system import System

__all__ = ["Notes", "MAX_BLOCKERS", "refusal_note", "replace_note", "forced_note"]

MAX_BLOCKERS = 10
"""Blocking tasks named one by one; the rest are counted."""


def _seconds(ns: int) -> str:
    text = f"{ns / 1e9:.3f}".rstrip("0").rstrip(".")
    return f"{text} s"


def _patch(name: str, replace_set: int | None) -> str:
    return f"'{name}'" if replace_set is None else f"'{name}' (set {replace_set})"


def _unresolved(u: Unresolved) -> str:
    """What klp_find_object_symbol() found for *u*, and the rule it applies."""
    where = u.objname or "vmlinux"
    if u.kind is RefusalRule.SYMBOL_NOT_FOUND:
        return f"{where} has no symbol {u.name}; a patched function must exist in its object"
    if u.kind is RefusalRule.SYMBOL_AMBIGUOUS:
        return (
            f"{where} has {u.nr_symbols} symbols {u.name}; old_sympos 0 takes only a unique "
            f"name: old_sympos 1 to {u.nr_symbols} picks one, in kallsyms order"
        )
    symbols = "symbol" if u.nr_symbols == 1 else "symbols"
    return f"{where} has {u.nr_symbols} {symbols} {u.name}; old_sympos {u.sympos} is beyond them"


def refusal_note(event: PatchRefused) -> str | None:
    """Why *event*'s patch was refused, or None when the log already says."""
    who = _patch(event.patch, event.replace_set)
    err = f"-{errno_name(event.errno)}"
    if event.unresolved is not None:  # the log names the symbol, not the patch
        return f"{who} refused ({err}): {_unresolved(event.unresolved)}"
    c: Conflict | None = event.conflict
    if c is None:
        return None
    other = _patch(c.other, c.other_set)
    if c.state_id is not None:
        what = f"{other} has state {c.state_id}"
    elif c.function is not None:
        what = f"{other} patches {c.function}"
    else:
        what = f"{other} is in transition"
    return f"{who} refused ({err}): {what}; {c.rule}"


def replace_note(event: PatchesReplaced, replace_set: int | None = None) -> str | None:
    """What a completed replace did, or None when it replaced nothing."""
    if not event.replaced:
        return None
    who = _patch(event.patch, replace_set)
    old = ", ".join(f"'{p}'" for p in event.replaced)
    parts = []
    if event.repatched:
        parts.append(f"patched again: {', '.join(event.repatched)}")
    if event.reverted:
        parts.append(f"back to the original: {', '.join(event.reverted)}")
    keepers: dict[str, list[str]] = {}
    for func, patch in event.kept:
        keepers.setdefault(patch, []).append(func)
    for patch, funcs in keepers.items():
        parts.append(f"kept by '{patch}': {', '.join(funcs)}")
    if not parts:
        return f"{who} replaced {old}, which patched no function"
    return f"{who} replaced {old}: {'; '.join(parts)}"


def forced_note(event: TransitionForced) -> str:
    head = (
        f"'{event.patch}': {event.target.verb} transition forced, every task switched, safe or not"
    )
    if not event.pinned:
        return f"{head}; no module is pinned"
    mods = ", ".join(event.pinned)
    return f"{head}; pinned forever (rmmod refused, refcount kept): {mods}"


class Notes:
    """Turns a System's events into notes, handed to *sink* one line at a time."""

    def __init__(self, system: System, sink: Callable[[str], None]):
        self.system = system
        self.sink = sink
        self._sets: dict[str, int | None] = {}
        self._start: dict[str, int] = {}  # transition patch -> START time
        self._shown: tuple[tuple[int, str, str | None], ...] | None = None
        self._replaced: PatchesReplaced | None = None
        self._health: dict[str, str] = {}
        system.events.listeners.append(self._event)

    def _event(self, rec: Stamped) -> None:
        e = rec.event
        if isinstance(e, TransitionBlocked):
            self._blocked(rec.ts_ns, e)
        elif isinstance(e, TransitionEvent):
            self._transition(rec.ts_ns, e)
        elif isinstance(e, PatchEnabled):
            self._sets[e.patch] = e.replace_set
        elif isinstance(e, PatchRefused):
            text = refusal_note(e)
            if text is not None:
                self.sink(text)
        elif isinstance(e, PatchesReplaced):
            self._replaced = e  # shown after "patching complete"
        elif isinstance(e, TransitionForced):
            self.sink(forced_note(e))
        elif isinstance(e, AttachRefused):
            if e.why:
                funcs = ",".join(e.funcs)
                self.sink(f"{e.kind} {funcs} refused (-{errno_name(e.errno)}): {e.why}")
        elif isinstance(e, LinkAttached | LinkDetached):
            self.check_health()

    def _transition(self, ts: int, e: TransitionEvent) -> None:
        if e.phase is TransitionPhase.START:
            self._start[e.patch] = ts
            self._shown = None
        elif e.phase is TransitionPhase.COMPLETE and e.when is When.AFTER:
            self._start.pop(e.patch, None)
            self._shown = None
            replaced, self._replaced = self._replaced, None
            if replaced is not None and replaced.patch == e.patch:
                text = replace_note(replaced, self._sets.get(e.patch))
                if text is not None:
                    self.sink(text)
            self.check_health()

    def _blocked(self, ts: int, e: TransitionBlocked) -> None:
        start = self._start.get(e.patch)
        if start is None or ts <= start:
            return  # the first try, from klp_enable_patch() itself: not a retry
        key = tuple((b.pid, b.why, b.function) for b in e.blockers)
        if key == self._shown:
            return
        self._shown = key
        n = len(e.blockers)
        tasks = "1 task has" if n == 1 else f"{n} tasks have"
        self.sink(
            f"'{e.patch}' is still {e.target.verb} after {_seconds(ts - start)}; "
            f"{tasks} not switched:"
        )
        for b in e.blockers[:MAX_BLOCKERS]:
            self.sink("  " + blocker_text(b, e.patch, e.target))
        if n > MAX_BLOCKERS:
            self.sink(f"  ... and {n - MAX_BLOCKERS} more (klp_blocking lists them all)")

    def check_health(self) -> None:
        """Note every attachment that went silent or gone since the last check."""
        if not self.system.bpf.links and not self._health:
            return
        from klpsim.model.health import attachment_health

        now: dict[str, str] = {}
        for h in attachment_health(self.system):
            link = h.link
            now[link.name] = h.state
            before = self._health.get(link.name)
            if h.state == before or h.state == "active":
                continue
            what = f"{link.name} ({link.kind} {link.where()})"
            why = f": {h.note}" if h.note else ""
            if before is None:
                self.sink(f"{what} attached but {h.state}{why}")
            else:
                self.sink(f"{what} went {h.state}{why}")
        self._health = now
