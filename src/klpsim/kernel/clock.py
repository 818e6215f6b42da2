"""Simulated time: jiffies, timers and the system workqueue.

There is no wall clock. Time moves only when someone calls
:meth:`Clock.advance`; timers and work items then run in expiry order,
ties broken by the order they were queued.
"""

import heapq
from collections.abc import Callable

__all__ = ["Clock", "DelayedWork", "NSEC_PER_SEC", "NSEC_PER_MSEC", "HZ"]

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_MSEC = 1_000_000
HZ = 250  # Debian's CONFIG_HZ
TICK_NSEC = NSEC_PER_SEC // HZ


class DelayedWork:
    """A ``struct delayed_work``: one function, queued at most once."""

    __slots__ = ("fn", "pending", "_seq", "fast_forward")

    def __init__(
        self, fn: Callable[[], None], fast_forward: Callable[[int, int], int] | None = None
    ):
        self.fn = fn
        self.pending = False
        self._seq = -1
        self.fast_forward = fast_forward
        """The model's shortcut, not the kernel's: ``fast_forward(expires,
        horizon)`` may answer a later expiry when every run of this work
        until then would change nothing but its own counters (which it then
        brings up to date itself), so that the clock jumps instead of
        running it over and over. Asked only when this work is the only
        thing due before *horizon* and nothing else runs while time passes."""


class Clock:
    """Monotonic simulated time in nanoseconds, with a timer wheel."""

    def __init__(self) -> None:
        self.now = 0
        self._timers: list[tuple[int, int, DelayedWork]] = []
        self._seq = 0
        # Called whenever time is about to pass: the scheduler runs the
        # tasks that would have run in the meantime (switch points).
        self.on_time_passes: list[Callable[[], None]] = []
        # Whether passing time runs nothing but timers (no task on a CPU):
        # only then may a work's fast_forward skip runs.
        self.quiet: list[Callable[[], bool]] = []
        self.fast_forward_enabled = True

    @property
    def jiffies(self) -> int:
        return self.now // TICK_NSEC

    def round_jiffies_relative(self, delay_ns: int) -> int:
        """round_jiffies_relative(): make the expiry land on a whole second.

        Like kernel/time/timer.c it rounds to the nearest second, down only
        if that is still in the future, so that timers batch up.
        """
        j = self.jiffies + delay_ns // TICK_NSEC
        rem = j % HZ
        rounded = j - rem if rem < HZ // 4 else j - rem + HZ
        if rounded <= self.jiffies:
            return delay_ns
        return rounded * TICK_NSEC - self.now

    def schedule_delayed_work(self, work: DelayedWork, delay_ns: int) -> bool:
        """Queue *work*; False (and no change) if it is already pending."""
        if work.pending:
            return False
        work.pending = True
        self._seq += 1
        work._seq = self._seq
        heapq.heappush(self._timers, (self.now + delay_ns, self._seq, work))
        return True

    def schedule_work(self, work: DelayedWork) -> bool:
        """Queue *work* to run as soon as time passes (a kworker picks it up)."""
        return self.schedule_delayed_work(work, 0)

    def pending(self) -> bool:
        """Is any work queued (due now or later)?"""
        return any(work.pending and work._seq == seq for _, seq, work in self._timers)

    def _drop_cancelled(self) -> None:
        t = self._timers
        while t and (not t[0][2].pending or t[0][2]._seq != t[0][1]):
            heapq.heappop(t)

    def advance(self, delta_ns: int) -> None:
        """Let *delta_ns* of simulated time pass, running what falls due."""
        target = self.now + delta_ns
        while True:
            for hook in self.on_time_passes:
                hook()
            self._drop_cancelled()
            if not self._timers or self._timers[0][0] > target:
                break
            expires, seq, work = self._timers[0]
            if work.fast_forward is not None and self.fast_forward_enabled:
                later = self._fast_forward(expires, seq, work, target)
                if later > expires:
                    heapq.heapreplace(self._timers, (later, seq, work))
                    continue
            heapq.heappop(self._timers)
            self.now = max(self.now, expires)
            work.pending = False
            work.fn()
        self.now = target

    def _fast_forward(self, expires: int, seq: int, work: DelayedWork, target: int) -> int:
        if not all(quiet() for quiet in self.quiet):
            return expires
        horizon = target
        for when, other_seq, other in self._timers:
            if other is not work and other.pending and other._seq == other_seq:
                horizon = min(horizon, when - 1)
        assert work.fast_forward is not None
        return work.fast_forward(expires, horizon)
