"""Parsers of the debugfs/tracefs lists of the other users of a patched function.

* ``kprobes/list``: kernel/kprobes.c report_probe();
* ``tracing/enabled_functions``: kernel/trace/ftrace.c t_show() with
  FTRACE_ITER_ENABLED;
* ``fail_function/injectable``: a symlink to ``error_injection/list``,
  lib/error-inject.c ei_seq_show().
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "FtraceRecord",
    "InjectableEntry",
    "KprobeEntry",
    "parse_enabled_functions",
    "parse_injectable",
    "parse_kprobes",
]


class KprobeEntry(NamedTuple):
    """One registered kprobe (or kretprobe)."""

    address: int | None
    """p->addr; None when printed as zeros (kallsyms_show_value() false: not root)."""
    kind: str
    """``k`` kprobe, ``r`` kretprobe (pre_handler_kretprobe)."""
    symbol: str | None
    """The probed symbol; None when only a raw address was printed."""
    offset: int
    """Offset into the symbol."""
    module: str | None
    """The module of the symbol, None for vmlinux."""
    flags: frozenset[str]
    """Of ``GONE``, ``DISABLED``, ``OPTIMIZED``, ``FTRACE`` (an ftrace-based probe)."""
    text: str
    """The line as printed."""


_KP_FLAGS = re.compile(r"(?:\[(?:GONE|DISABLED|OPTIMIZED|FTRACE)\])+")
_SYM_OFF = re.compile(r"(\S+?)\+0x([0-9a-fA-F]+)(?:/0x[0-9a-fA-F]+)?")


def parse_kprobes(text: str) -> list[KprobeEntry]:
    """``%px  k|r  sym+0xoff  [mod] [FLAGS]`` (or ``%pS`` when the symbol is unknown)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = line.split()
        if len(f) < 3 or f[1] not in ("k", "r"):
            raise ValueError(f"not a kprobes/list line: {line!r}")
        try:
            addr = int(f[0], 16)
        except ValueError:
            raise ValueError(f"not a kprobes/list line: {line!r}") from None
        flags: set[str] = set()
        module = None
        for tok in f[3:]:
            if _KP_FLAGS.fullmatch(tok):
                flags.update(re.findall(r"\[(\w+)\]", tok))
            else:
                module = tok.strip("[]")
        m = _SYM_OFF.fullmatch(f[2])
        symbol, offset = (m[1], int(m[2], 16)) if m else (None, 0)
        out.append(
            KprobeEntry(addr or None, f[1], symbol, offset, module, frozenset(flags), line.rstrip())
        )
    return out


class FtraceRecord(NamedTuple):
    """One line of ``enabled_functions``: a function some ftrace_ops has enabled."""

    function: str
    """The traced function."""
    module: str | None
    """Its module, None for vmlinux."""
    refcount: int
    """ftrace_rec_count(): how many ftrace_ops want this function."""
    flags: frozenset[str]
    """Of ``R`` (FTRACE_FL_REGS), ``I`` (IPMODIFY: a livepatch or another ip changer),
    ``D`` (DIRECT), ``O`` (CALL_OPS, 6.3+), ``M`` (MODIFIED, 6.4+)."""
    trampolines: tuple[str, ...]
    """Each ``tramp: <trampoline> (<ops func>)`` as printed."""
    calls: tuple[str, ...]
    """The ``->`` targets (ops trampoline functions), e.g. ``klp_ftrace_handler+0x0/0x1e0``."""
    ops: tuple[str, ...]
    """Each ``ops: <ops> (<func>)`` as printed (CALL_OPS)."""
    direct: str | None
    """The ``direct-->`` target of a direct call (BPF trampoline)."""
    text: str
    """The record as printed (continuation lines joined with a newline)."""


_REC = re.compile(r"(\S+)(?: \[(\S+)\])? \((\d+)\)(.*)")


def parse_enabled_functions(text: str) -> list[FtraceRecord]:
    """Records; a line starting with a tab (``\\tdirect-->``) continues the previous one."""
    records: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("\t") and records:
            records[-1].append(line)
        else:
            records.append([line])
    out = []
    for rec in records:
        m = _REC.fullmatch(rec[0])
        if m is None:
            raise ValueError(f"not an enabled_functions line: {rec[0]!r}")
        rest = m[4]
        cut = min((i for i in (rest.find("\t"), rest.find(" ->")) if i >= 0), default=len(rest))
        flags = frozenset(re.findall(r"[A-Z]", rest[:cut]))
        parts = rest[cut:].split("\t")
        direct = None
        for cont in rec[1:]:
            d = re.search(r"direct-->(\S+)", cont)
            if d:
                direct = d[1]
        out.append(
            FtraceRecord(
                m[1],
                m[2],
                int(m[3]),
                flags,
                tuple(p.split(" ->")[0].strip() for p in parts if p.startswith("tramp:")),
                tuple(re.findall(r" ->(\S+)", rest)),
                tuple(p.split(" {")[0].strip() for p in parts if p.startswith("ops:")),
                direct,
                "\n".join(rec),
            )
        )
    return out


class InjectableEntry(NamedTuple):
    """A function that error injection (fail_function, bpf_override_return) may override."""

    function: str
    module: str | None
    type: str
    """``NULL``, ``ERRNO``, ``ERRNO_NULL``, ``TRUE`` or ``(unknown)`` (error_type_string())."""


def parse_injectable(text: str) -> list[InjectableEntry]:
    """``%ps\\t%s``: ``func [mod]<TAB>TYPE``."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        func, tab, etype = line.partition("\t")
        m = re.fullmatch(r"(\S+)(?: \[(\S+)\])?", func)
        if not tab or m is None:
            raise ValueError(f"not an error_injection list line: {line!r}")
        out.append(InjectableEntry(m[1], m[2], etype.strip()))
    return out
