"""Progress of long commands (``klpsim vm``, ``fuzz``, ``diff``, ``plan --fleet``).

On a terminal: a bar with the count, the time elapsed and the time left,
drawn by ``rich`` when it is installed (the ``progress`` extra: ``pip install
'klpsim[progress]'``); messages print above it. Off a terminal, or without
rich: plain lines, one per message and one per finished item with its count
and the time left. rich is imported only when stderr is a terminal, so
start-up and pipelines never pay for it.

    with progress("fuzz", total=30) as bar:
        bar.log("fuzz: kernel 6.12, seed 7, 30 scenarios")
        for ...:
            bar.advance("fuzz_7_3: same")
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["Progress", "progress"]


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


class Progress:
    """Plain lines: what every non-terminal (a log file, CI) gets."""

    plain = True
    """Each advance() prints a line (False: it updates a bar)."""

    def __init__(self, label: str, total: int | None, stream: TextIO, prefix: str = "klpsim"):
        self.label = label
        self.total = total
        self.stream = stream
        self.prefix = prefix
        self.done = 0
        self.start = time.monotonic()
        self.first: float | None = None
        self.first_done = 0

    def log(self, message: str) -> None:
        """A message of its own (printed above the bar on a terminal)."""
        print(f"{self.prefix}: {message}", file=self.stream, flush=True)

    def left(self) -> float | None:
        """Seconds left, from the mean time per item since the first one
        finished (what came before it, a download or a boot, is not an
        item's time); None: not known yet."""
        if not self.total or self.first is None or self.done <= self.first_done:
            return None
        per = (time.monotonic() - self.first) / (self.done - self.first_done)
        return per * (self.total - self.done)

    def advance(self, detail: str = "", count: int = 1) -> None:
        """*count* more items are done; *detail* says which and how it went."""
        self.done += count
        if self.first is None:
            self.first, self.first_done = time.monotonic(), self.done
        where = f"[{self.done}/{self.total}]" if self.total else f"[{self.done}]"
        left = self.left()
        when = f"{_clock(time.monotonic() - self.start)}"
        if left is not None and self.done < (self.total or 0):
            when += f", about {_clock(left)} left"
        text = f" {detail}" if detail else ""
        self.log(f"{self.label}: {where}{text} ({when})")

    def close(self) -> None:
        pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RichProgress(Progress):
    """rich's bar on a terminal."""

    plain = False

    def __init__(self, label: str, total: int | None, stream: TextIO, prefix: str = "klpsim"):
        super().__init__(label, total, stream, prefix)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        columns: list[Any] = [TextColumn(f"{prefix}: {label}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        else:
            columns += [TextColumn("step {task.completed}")]
        columns += [TimeElapsedColumn(), TextColumn("{task.description}")]
        self._bar = Bar(*columns, console=Console(file=stream), transient=False)
        self._task = self._bar.add_task("", total=total)
        self._bar.start()

    def log(self, message: str) -> None:
        self._bar.console.print(f"{self.prefix}: {message}", markup=False, highlight=False)

    def advance(self, detail: str = "", count: int = 1) -> None:
        self.done += count
        self._bar.update(self._task, advance=count, description=detail)

    def close(self) -> None:
        self._bar.stop()


def progress(
    label: str,
    total: int | None = None,
    stream: TextIO | None = None,
    prefix: str = "klpsim",
) -> Progress:
    """A progress display for *total* items (None: a count of steps) on
    *stream* (default stderr): rich's bar on a terminal, plain lines otherwise."""
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        try:
            return _RichProgress(label, total, out, prefix)
        except ImportError:
            pass  # no rich: plain lines
    return Progress(label, total, out, prefix)
