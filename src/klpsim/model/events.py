"""The model's event log: every typed event of a booted System, with the
simulated time it happened at.

livepatch/events.py and trace/events.py define what their layers emit (as
the kernel defines its tracepoints next to the code); this module
collects them. Consumers (the invariant checker, the ``call`` verb, notes,
a timeline) read :attr:`EventLog.records` or :meth:`EventLog.capture`
instead of parsing the kernel log.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, TypeVar

from klpsim.kernel.clock import Clock
from klpsim.kernel.tracepoint import Tracepoint, distinct
from klpsim.livepatch.events import KlpEvent
from klpsim.trace.events import TraceEvent

__all__ = ["Event", "Stamped", "EventLog"]

Event = KlpEvent | TraceEvent
"""Every event a System emits."""

E = TypeVar("E", bound=Event)


@distinct
class Stamped(NamedTuple):
    """One event and when it happened."""

    ts_ns: int
    """Simulated time, in nanoseconds since boot."""
    event: Event


class EventLog:
    """Every event since boot, in order."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.records: list[Stamped] = []
        self.listeners: list[Callable[[Stamped], None]] = []
        """Called with each record as it is logged (the notes)."""
        self._captures: list[list[Event]] = []

    def attach(self, tp: Tracepoint[E]) -> None:
        """Register as a probe on *tp*."""
        tp.register(self._record)

    def _record(self, event: Event) -> None:
        rec = Stamped(self.clock.now, event)
        self.records.append(rec)
        for capture in self._captures:
            capture.append(event)
        for listener in self.listeners:
            listener(rec)

    @contextmanager
    def capture(self) -> Iterator[list[Event]]:
        """The events emitted while the ``with`` block runs."""
        events: list[Event] = []
        self._captures.append(events)
        try:
            yield events
        finally:
            self._captures.remove(events)
