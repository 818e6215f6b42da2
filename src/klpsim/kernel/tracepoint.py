"""Tracepoints: typed events a subsystem emits at fixed places.

Mirrors the idea of include/linux/tracepoint.h: a subsystem defines its
event types next to its code and calls its tracepoint where the event
happens; probes registered on the tracepoint receive every event, in
registration order. Nothing in the simulated kernel depends on who
listens. The model's event log (model/events.py) is one such probe.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Tracepoint"]

E = TypeVar("E")


class Tracepoint(Generic[E]):
    """One tracepoint: ``tp(event)`` hands *event* to every probe."""

    __slots__ = ("probes",)

    def __init__(self) -> None:
        self.probes: list[Callable[[E], None]] = []

    def register(self, probe: Callable[[E], None]) -> None:
        """tracepoint_probe_register()."""
        self.probes.append(probe)

    def __call__(self, event: E) -> None:
        for probe in self.probes:
            probe(event)
