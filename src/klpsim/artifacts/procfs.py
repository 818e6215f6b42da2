"""Parsers of procfs text: ``/proc/modules``, ``/proc/PID/stat`` and ``stack``.

Each mirrors the kernel function that prints the file; a line that does not
have that shape raises :class:`ValueError` with the line.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "PF_KTHREAD",
    "ModuleLine",
    "StackFrame",
    "StatLine",
    "parse_proc_modules",
    "parse_stack",
    "parse_stat",
]

#: include/linux/sched.h: "I am a kernel thread".
PF_KTHREAD = 0x00200000


class ModuleLine(NamedTuple):
    """One line of ``/proc/modules`` (kernel/module/procfs.c m_show())."""

    name: str
    size: int
    refcnt: int | None
    """module_refcount(); None when printed as ``-`` (no CONFIG_MODULE_UNLOAD)."""
    used_by: tuple[str, ...]
    """Modules using this one (its ``source_list``, what ``holders/`` lists), plus
    ``[permanent]`` for a module that cannot be unloaded."""
    state: str
    """``Live``, ``Loading`` (MODULE_STATE_COMING) or ``Unloading`` (GOING)."""
    address: int
    """Base address; 0 when read without root."""
    taints: str
    """module_flags() letters without the parentheses, e.g. ``OEK``; K is TAINT_LIVEPATCH."""


def parse_proc_modules(text: str) -> list[ModuleLine]:
    """``name size refcnt used_by, state 0xaddr [(taints)]``, newest module first."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = line.split()
        if len(f) < 6 or not f[1].isdigit() or not f[5].startswith("0x"):
            raise ValueError(f"not a /proc/modules line: {line!r}")
        refcnt = None if f[2] == "-" else int(f[2])
        used_by = tuple(u for u in f[3].split(",") if u and u != "-")
        taints = f[6].strip("()") if len(f) > 6 else ""
        out.append(ModuleLine(f[0], int(f[1]), refcnt, used_by, f[4], int(f[5], 16), taints))
    return out


class StatLine(NamedTuple):
    """The fields of ``/proc/PID/stat`` a planner needs (fs/proc/array.c do_task_stat())."""

    pid: int
    comm: str
    """task->comm: what lies between the first ``(`` and the last ``)``."""
    state: str
    """One letter: R running, S sleeping, D disk sleep, I idle, T stopped, ..."""
    flags: int
    """task->flags (field 9)."""

    @property
    def kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


def parse_stat(text: str) -> StatLine:
    """Parse ``pid (comm) state ppid ... flags ...``.

    comm may hold spaces, parentheses and even newlines, so it is cut at the
    *last* ``)``, as procps does.
    """
    lp, rp = text.find("("), text.rfind(")")
    if lp < 1 or rp < lp:
        raise ValueError(f"not a /proc/PID/stat line: {text[:80]!r}")
    rest = text[rp + 1 :].split()
    if len(rest) < 7 or not rest[6].isdigit() or not text[:lp].strip().isdigit():
        raise ValueError(f"not a /proc/PID/stat line: {text[:80]!r}")
    return StatLine(int(text[:lp]), text[lp + 1 : rp], rest[0], int(rest[6]))


class StackFrame(NamedTuple):
    """One line of ``/proc/PID/stack``: ``[<0>] func+0xoff/0xsize [mod]`` (%pB)."""

    function: str | None
    """The symbol; None when the address did not resolve (printed as hex)."""
    offset: int
    """Offset of the return address in the function."""
    size: int
    """Size of the function."""
    module: str | None
    """The module, None for vmlinux."""
    text: str
    """The line as printed, without the ``[<...>]`` prefix."""


_FRAME = re.compile(r"\[<[0-9a-fA-F]+>\] (.+)")
_PB = re.compile(r"(\S+)\+0x([0-9a-f]+)/0x([0-9a-f]+)(?: \[(\S+)\])?")


def parse_stack(text: str) -> tuple[StackFrame, ...]:
    """Frames innermost first (proc_pid_stack())."""
    frames = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _FRAME.fullmatch(line.rstrip())
        if m is None:
            raise ValueError(f"not a /proc/PID/stack line: {line!r}")
        body = m[1]
        pb = _PB.fullmatch(body)
        if pb is None:
            frames.append(StackFrame(None, 0, 0, None, body))
        else:
            frames.append(StackFrame(pb[1], int(pb[2], 16), int(pb[3], 16), pb[4], body))
    return tuple(frames)
