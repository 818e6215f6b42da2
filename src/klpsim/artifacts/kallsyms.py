"""Real kernel symbol tables: ``/proc/kallsyms`` and ``System.map``.

Both list one symbol a line, ``<address> <type> <name>``; kallsyms adds
``\\t[<module>]`` for module symbols (kernel/kallsyms.c s_show()) and prints
vmlinux first, in address order, then each module, the ftrace and BPF
trampolines (``[__builtin__ftrace]``, ``[bpf]``) and kprobe insn pages
(``[__builtin__kprobes]``).  Read without root, every address is 0
(kallsyms_show_value()); the names and their order stay, and they are what
livepatch needs: ``old_sympos`` picks the N-th symbol of a name inside one
object, counting in this order, as klp_find_object_symbol() does (it matches
names of any symbol type).

A 300k-line table is split into columns with ``bytes.split`` (C speed); the
name index is built on the first lookup.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ["ANY", "Ksym", "KallsymsError", "SymbolTable", "read_symbol_table"]

#: ``module=ANY`` in :meth:`SymbolTable.lookup`: symbols of every object.
ANY = "*"

_HEX = re.compile(rb"[0-9A-Fa-f]+")
_LINE = re.compile(rb"([0-9A-Fa-f]+) (\S) (\S+)(?:\t\[(\S+)\])?[ \t]*")


class KallsymsError(Exception):
    """A symbol table that cannot be read: one line naming the file and line."""


class Ksym(NamedTuple):
    """One line of kallsyms or System.map."""

    address: int
    """The address; 0 for every symbol when the table was read without root."""
    type: str
    """nm's type letter: ``T``/``t`` text, ``W``/``w`` weak, ``D``/``d`` data, ...
    For module symbols kallsyms prints it upper case when the symbol is
    exported, lower case otherwise."""
    name: str
    """The symbol name."""
    module: str | None
    """The module it belongs to, None for vmlinux (and for every System.map line)."""

    @property
    def is_function(self) -> bool:
        return self.type in "tTwW"


class SymbolTable:
    """A parsed kallsyms or System.map, in the kernel's order.

    Construction splits the text into columns and checks every line; the
    per-name index is built lazily.
    """

    def __init__(self, data: bytes, source: str = "kallsyms"):
        self.source = source
        self._addr: list[bytes]
        self._type: list[bytes]
        self._name: list[bytes]
        self._mod: list[bytes]  # "[mod]" tokens of the module part
        self._nvm: int  # lines before the first module symbol
        self._first: dict[bytes, int] | None = None
        self._dups: dict[bytes, list[int]] | None = None
        if not self._split(data):
            self._parse_lines(data)
        self._addresses_known: bool | None = None

    # -- parsing ---------------------------------------------------------

    def _split(self, data: bytes) -> bool:
        """The fast path: vmlinux lines have 3 fields, module lines 4."""
        pos = data.find(b"\t[")
        cut = len(data) if pos < 0 else data.rfind(b"\n", 0, pos) + 1
        vm, md = data[:cut], data[cut:]
        a, b = vm.split(), md.split()
        if len(a) % 3 or len(b) % 4:
            return False
        if _lines(vm) != len(a) // 3 or _lines(md) != len(b) // 4:
            return False
        types = a[1::3] + b[1::4]
        if types and set(map(len, types)) != {1}:
            return False
        mods = b[3::4]
        if mods and not all(m[:1] == b"[" and m[-1:] == b"]" for m in mods):
            return False
        addr = a[0::3] + b[0::4]
        if addr and not _HEX.fullmatch(b"".join(addr)):
            return False
        self._addr = addr
        self._type = types
        self._name = a[2::3] + b[2::4]
        self._mod = mods
        self._nvm = len(a) // 3
        return True

    def _parse_lines(self, data: bytes) -> None:
        """The careful path: one line at a time, to name the first bad one."""
        addr: list[bytes] = []
        typ: list[bytes] = []
        name: list[bytes] = []
        mod: list[bytes] = []
        nvm = 0
        for i, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            m = _LINE.fullmatch(line)
            if m is None:
                raise self._bad(i, line)
            if m[4] is None:
                if mod:
                    raise self._bad(i, line, "a vmlinux symbol after module symbols")
                nvm += 1
            else:
                mod.append(b"[" + m[4] + b"]")
            addr.append(m[1])
            typ.append(m[2])
            name.append(m[3])
        self._addr, self._type, self._name, self._mod, self._nvm = addr, typ, name, mod, nvm

    def _bad(
        self, lineno: int, line: bytes, what: str = "not a kallsyms or System.map line"
    ) -> KallsymsError:
        text = line.decode("utf-8", "replace")
        if "System.map" in text and "-dbg" in text:
            return KallsymsError(
                f"{self.source}: a stub System.map (Debian ships the real one in "
                "linux-image-*-dbg); use the host's /proc/kallsyms instead"
            )
        return KallsymsError(f"{self.source}:{lineno}: {what}: {text[:80]!r}")

    def _index(self) -> tuple[dict[bytes, int], dict[bytes, list[int]]]:
        if self._first is None:
            names = self._name
            n = len(names)
            self._first = dict(zip(reversed(names), range(n - 1, -1, -1), strict=True))
            dup_names = {k for k, c in Counter(names).items() if c > 1}
            dups: dict[bytes, list[int]] = {k: [] for k in dup_names}
            if dup_names:
                for i, k in enumerate(names):
                    if k in dup_names:
                        dups[k].append(i)
            self._dups = dups
        assert self._dups is not None
        return self._first, self._dups

    # -- queries ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._name)

    def _sym(self, i: int) -> Ksym:
        mod = None
        if i >= self._nvm:
            mod = self._mod[i - self._nvm][1:-1].decode("utf-8", "replace")
        return Ksym(
            int(self._addr[i], 16),
            self._type[i].decode(),
            self._name[i].decode("utf-8", "replace"),
            mod,
        )

    def __iter__(self) -> Iterator[Ksym]:
        for i in range(len(self._name)):
            yield self._sym(i)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.encode() in self._index()[0]

    @property
    def addresses_known(self) -> bool:
        """False when every address is 0: the table was read without root."""
        if self._addresses_known is None:
            self._addresses_known = any(a.strip(b"0") for a in self._addr)
        return self._addresses_known

    def lookup(self, name: str, module: str | None = ANY) -> tuple[Ksym, ...]:
        """Every symbol called ``name`` in ``module`` (None: vmlinux), in order.

        ``old_sympos`` N (N >= 1) of a klp_func is the N-th of these; sympos
        0 asks for a unique one.
        """
        first, dups = self._index()
        key = name.encode()
        positions = dups.get(key)
        if positions is None:
            i = first.get(key)
            positions = [] if i is None else [i]
        out = (self._sym(i) for i in positions)
        if module == ANY:
            return tuple(out)
        return tuple(s for s in out if s.module == module)

    def find(self, name: str, module: str | None) -> list[tuple[int, bool]]:
        """kernel/symbols.py's SymbolSource: each symbol ``name`` of ``module``
        (None: vmlinux) in order, as (address, is text)."""
        return [(s.address, s.is_function) for s in self.lookup(name, module)]

    def count(self, name: str, module: str | None = None) -> int:
        """How many symbols of that name ``module`` (None: vmlinux) has."""
        return len(self.lookup(name, module))

    def modules(self) -> tuple[str, ...]:
        """The modules (and pseudo-modules such as ``bpf``) in table order."""
        seen: dict[bytes, None] = dict.fromkeys(self._mod)
        return tuple(m[1:-1].decode("utf-8", "replace") for m in seen)

    def functions(self, module: str | None = None) -> tuple[str, ...]:
        """Names of the text symbols (t/T/w/W) of ``module`` (None: vmlinux), in order."""
        if module is None:
            rng: range | list[int] = range(self._nvm)
        else:
            tag = f"[{module}]".encode()
            rng = [i for i in range(self._nvm, len(self._name)) if self._mod[i - self._nvm] == tag]
        return tuple(
            self._name[i].decode("utf-8", "replace") for i in rng if self._type[i] in _TEXT_TYPES
        )


_TEXT_TYPES = frozenset((b"t", b"T", b"w", b"W"))


def _lines(block: bytes) -> int:
    if not block:
        return 0
    return block.count(b"\n") + (0 if block.endswith(b"\n") else 1)


def read_symbol_table(path: str | Path) -> SymbolTable:
    """Read a kallsyms copy or a System.map, plain or gzip'd (``.gz``).

    Raises :class:`KallsymsError` with one line naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KallsymsError(f"{path}: {e.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise KallsymsError(f"{path}: truncated or corrupt gzip data ({e})") from None
    if not data.strip():
        raise KallsymsError(f"{path}: empty symbol table")
    return SymbolTable(data, str(path))
