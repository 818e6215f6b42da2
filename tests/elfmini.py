"""A minimal ELF64 relocatable writer for tests that need no compiler.

Just enough to lay out a module the way a compiler would: sections with
data, a symbol table (section symbols first, then the named locals, then
globals) and RELA sections whose entries name a symbol or a section.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["Sec", "Sym", "elf"]

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS = 1, 2, 3, 4, 8
A, W, X = 0x2, 0x1, 0x4


@dataclass
class Sec:
    name: str
    data: bytes = b""
    flags: int = A
    type: int = SHT_PROGBITS
    size: int | None = None  # NOBITS
    relocs: list[tuple[int, str, int]] = field(default_factory=list)
    """(offset, symbol name or "sec:<section>", addend) -> R_X86_64_64 entries."""


@dataclass
class Sym:
    name: str
    section: str | None  # None: undefined
    value: int = 0
    size: int = 0
    type: int = 2  # STT_FUNC
    bind: int = 0  # STB_LOCAL


def elf(secs: list[Sec], syms: list[Sym], machine: int = 62, etype: int = 1) -> bytes:
    names = [s.name for s in secs]
    rela_secs = [s for s in secs if s.relocs]
    all_names = ["", *names, *(".rela" + s.name for s in rela_secs), ".symtab", ".strtab"]
    all_names.append(".shstrtab")
    index = {n: i for i, n in enumerate(all_names)}

    strtab = bytearray(b"\0")

    def sname(n: str) -> int:
        if not n:
            return 0
        off = len(strtab)
        strtab.extend(n.encode() + b"\0")
        return off

    sym_entries = [struct.pack("<IBBHQQ", 0, 0, 0, 0, 0, 0)]
    sym_index = {}
    for s in secs:  # section symbols
        sym_index["sec:" + s.name] = len(sym_entries)
        sym_entries.append(struct.pack("<IBBHQQ", 0, 3, 0, index[s.name], 0, 0))
    ordered = [s for s in syms if s.bind == 0] + [s for s in syms if s.bind != 0]
    first_global = len(sym_entries) + sum(1 for s in syms if s.bind == 0)
    for s in ordered:
        sym_index[s.name] = len(sym_entries)
        shndx = index[s.section] if s.section else 0
        sym_entries.append(
            struct.pack("<IBBHQQ", sname(s.name), (s.bind << 4) | s.type, 0, shndx, s.value, s.size)
        )

    shstrtab = bytearray(b"\0")
    name_off = {}
    for n in all_names[1:]:
        name_off[n] = len(shstrtab)
        shstrtab.extend(n.encode() + b"\0")

    body = bytearray(b"\0" * 64)
    headers = [bytes(64)]

    def add(name, typ, flags, data, link=0, info=0, entsize=0, size=None):
        while len(body) % 8:
            body.append(0)
        off = len(body)
        if typ != SHT_NOBITS:
            body.extend(data)
        headers.append(
            struct.pack(
                "<IIQQQQIIQQ",
                name_off[name],
                typ,
                flags,
                0,
                off,
                len(data) if size is None else size,
                link,
                info,
                8,
                entsize,
            )
        )

    for s in secs:
        add(s.name, s.type, s.flags, s.data, size=s.size)
    for s in rela_secs:
        data = b"".join(
            struct.pack("<QQq", off, (sym_index[sym] << 32) | 1, addend)
            for off, sym, addend in s.relocs
        )
        add(".rela" + s.name, SHT_RELA, 0x40, data, index[".symtab"], index[s.name], 24)
    add(".symtab", SHT_SYMTAB, 0, b"".join(sym_entries), index[".strtab"], first_global, 24)
    add(".strtab", SHT_STRTAB, 0, bytes(strtab))
    add(".shstrtab", SHT_STRTAB, 0, bytes(shstrtab))
    while len(body) % 8:
        body.append(0)
    shoff = len(body)
    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH",
        b"\x7fELF",
        2,
        1,
        1,
        0,
        0,
        bytes(7),
        etype,
        machine,
        1,
        0,
        0,
        shoff,
        0,
        64,
        0,
        0,
        64,
        len(headers),
        index[".shstrtab"],
    )
    return ehdr + bytes(body[64:]) + b"".join(headers)
