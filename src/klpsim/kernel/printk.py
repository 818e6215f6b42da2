"""printk, the kernel log buffer and dynamic debug.

Each record is one printk() call (one ``/dev/kmsg`` write). A record may
hold several lines: ``dmesg --notime`` prints them plainly, ``dmesg``
indents the continuation lines under the timestamp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klpsim.kernel.clock import Clock

__all__ = [
    "KERN_EMERG",
    "KERN_ALERT",
    "KERN_CRIT",
    "KERN_ERR",
    "KERN_WARNING",
    "KERN_NOTICE",
    "KERN_INFO",
    "KERN_DEBUG",
    "LogRecord",
    "Printk",
    "DynamicDebug",
    "escape",
]

KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR = 0, 1, 2, 3
KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG = 4, 5, 6, 7


def escape(text: str) -> str:
    """*text* on one line: control (and other unprintable) characters as
    backslash escapes, as util-linux's dmesg shows them (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


@dataclass(slots=True, frozen=True)
class LogRecord:
    """One record of the log buffer."""

    ts_ns: int
    """Simulated time of the printk() call."""
    level: int
    """Log level, KERN_EMERG (0) to KERN_DEBUG (7)."""
    text: str
    """The message without its trailing newline; may contain newlines."""
    origin: str = "kernel"
    """``kernel`` for printk(), ``user`` for a write to /dev/kmsg."""


class DynamicDebug:
    """The rules written to /sys/kernel/debug/dynamic_debug/control.

    A pr_debug() call site is (file, function); the last rule that matches
    it decides. Only the ``file`` and ``func`` keywords and the ``p`` flag
    are modelled.
    """

    def __init__(self) -> None:
        self.rules: list[tuple[str, str, bool]] = []
        self._cache: dict[tuple[str, str, str], bool] = {}  # (file, func, module)

    def control(self, query: str) -> int:
        """Apply one control line, e.g. ``file kernel/livepatch/* +p``."""
        words = query.split()
        if (
            len(words) != 3
            or words[0] not in ("file", "func", "module")
            or words[2][:1] not in "+-="
        ):
            return -22
        if "p" not in words[2][1:]:
            return -22
        self.rules.append((words[0], words[1], words[2][0] != "-"))
        self._cache.clear()
        return 0

    def enabled(self, file: str, func: str, module: str = "") -> bool:
        key = (file, func, module)
        on = self._cache.get(key)
        if on is None:
            on = self._cache[key] = self._evaluate(file, func, module)
        return on

    def _evaluate(self, file: str, func: str, module: str) -> bool:
        on = False
        for key, pattern, value in self.rules:
            subject = {"file": file, "func": func, "module": module}[key]
            if fnmatchcase(subject, pattern):
                on = value
        return on


class Printk:
    """The log buffer (``dmesg``) plus console listeners."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.records: list[LogRecord] = []
        self.dyndbg = DynamicDebug()
        self.listeners: list[Callable[[LogRecord], None]] = []

    def printk(self, level: int, text: str, origin: str = "kernel") -> None:
        rec = LogRecord(self.clock.now, level, text.rstrip("\n"), origin)
        self.records.append(rec)
        for listener in self.listeners:
            listener(rec)

    def dmesg(self, notime: bool = True) -> list[str]:
        """The lines ``dmesg`` (``--notime``) prints."""
        out: list[str] = []
        for rec in self.records:
            first, *rest = rec.text.split("\n")
            if notime:
                out.append(first)
                out.extend(rest)
            else:
                stamp = f"[{rec.ts_ns // 1_000_000_000:5d}.{rec.ts_ns // 1000 % 1_000_000:06d}] "
                out.append(stamp + first)
                out.extend(" " * len(stamp) + line for line in rest)
        return out
