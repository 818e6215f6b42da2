"""Tracepoints: typed events a subsystem emits at fixed places.

Mirrors the idea of include/linux/tracepoint.h: a subsystem defines its
event types next to its code and calls its tracepoint where the event
happens; probes registered on the tracepoint receive every event, in
registration order. Nothing in the simulated kernel depends on who
listens. The model's event log (model/events.py) is one such probe.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Tracepoint", "distinct"]

E = TypeVar("E")
R = TypeVar("R", bound=tuple[object, ...])


def distinct(cls: type[R]) -> type[R]:
    """Make a NamedTuple event equal only to events of its own type (a plain
    tuple compares by its values alone). Events are NamedTuples, not
    dataclasses, because defining a dataclass costs start-up time."""

    def __eq__(self: R, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self: R, other: object) -> bool:
        return not __eq__(self, other)

    def __hash__(self: R) -> int:
        return hash((type(self).__name__, tuple(self)))

    cls.__eq__ = __eq__  # type: ignore[assignment,method-assign]
    cls.__ne__ = __ne__  # type: ignore[assignment,method-assign]
    cls.__hash__ = __hash__  # type: ignore[assignment,method-assign]
    return cls


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
