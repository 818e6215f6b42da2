"""Livepatch modules (``.ko``): what ``klp_enable_patch()`` will be given.

A kernel module is an ELF relocatable (``ET_REL``): every pointer in its
static data is zero in the section and filled in at load time by an
``R_X86_64_64`` relocation.  Reading one means following relocations: a
string pointer is a relocation into a string section plus an addend; a
function pointer is one into a text section, named by the ``STT_FUNC``
symbol at that offset.  Three layouts exist (real-artifacts.md, part 1):

``klp_patch``
    A static ``struct klp_patch`` with its ``klp_object`` and ``klp_func``
    arrays in ``.data`` (hand-written modules, samples/livepatch, the
    kselftest modules, klpsim's generated modules).  The element sizes vary
    with the kernel version and config, because the internal fields are
    kobjects and list heads: they come from the module's DWARF when it has
    some, otherwise from the relocation pattern.
``kpatch-build``
    ``.kpatch.funcs``, an array of ``struct kpatch_patch_func`` (56 bytes
    upstream; forks add fields, so the entry size comes from the section
    size and the relocation spacing).  kpatch's patch hook builds the klp
    structures at run time.
``klp-build``
    Upstream klp-build (6.19+): ``.init.klp_objects``/``.init.klp_funcs``
    (``__klp_objects``/``__klp_funcs`` in its early revisions) holding
    ``struct klp_object_ext``/``struct klp_func_ext``
    (include/linux/livepatch_external.h), turned into klp structures by
    scripts/livepatch/init.c.

Only x86-64 modules are read.  pyelftools parses the ELF and DWARF headers;
the symbol table and relocations are decoded here with bounds checks, which
is faster and lets every malformed input end in one :class:`KoError`.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "CALLBACK_KINDS",
    "LAYOUT_KLP_BUILD",
    "LAYOUT_KLP_PATCH",
    "LAYOUT_KPATCH",
    "SHF_RELA_LIVEPATCH",
    "SHN_LIVEPATCH",
    "ElfReaderMissing",
    "KoCallback",
    "KoError",
    "KoFunc",
    "KoObject",
    "KoParam",
    "KoState",
    "LivepatchModule",
    "PlainModule",
    "Setting",
    "read_ko",
    "read_module",
    "read_module_bytes",
]

LAYOUT_KLP_PATCH = "klp_patch"
LAYOUT_KPATCH = "kpatch-build"
LAYOUT_KLP_BUILD = "klp-build"

#: ``struct klp_callbacks`` members, in their order in the struct.
CALLBACK_KINDS = ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch")

#: include/uapi/linux/elf.h: flag of ``.klp.rela.<obj>.<sec>`` sections, and
#: the section index of their ``.klp.sym.<obj>.<sym>,<pos>`` symbols.
SHF_RELA_LIVEPATCH = 0x00100000
SHN_LIVEPATCH = 0xFF20

_SHT_SYMTAB, _SHT_RELA, _SHT_NOBITS = 2, 4, 8
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4
_STT_OBJECT, _STT_FUNC, _STT_SECTION = 1, 2, 3
_SHN_LORESERVE = 0xFF00
_R_X86_64_64, _R_X86_64_32 = 1, 10
_MAX_ENTRIES = 1 << 16  # no array in a real module comes near this
_MAX_STRING = 4096


class KoError(Exception):
    """A file that cannot be read as a livepatch module: one line, naming the file."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class ElfReaderMissing(RuntimeError):
    """pyelftools (the ``elf`` extra) is not installed."""


@dataclass(frozen=True)
class Setting:
    """A patch setting (``replace``, ``replace_set``) and where it was found."""

    value: bool | int | None
    """The value; None when the file does not hold it."""
    source: str
    """``data`` (the klp_patch in the module's data), ``modinfo``
    (``livepatch_replace_set=N``), ``given`` (by the caller), ``unknown``
    (compiled into init code: kpatch-build, klp-build), ``absent`` (the
    struct the module was built against has no such field) or ``ambiguous``
    (``raw`` was read, but not whether the field is a bool ``replace`` or a
    u32 ``replace_set``)."""
    raw: int | None = None
    """With ``ambiguous``: the u32 read where the field sits."""


class KoFunc(NamedTuple):
    """One patched function (``struct klp_func``'s external fields)."""

    old_name: str | None
    """``old_name``: the function replaced."""
    old_sympos: int | None
    """``old_sympos``: which of several same-named symbols (0: the only one)."""
    new_func: str | None
    """Symbol name of ``new_func``; None when the symbol is stripped."""


class KoObject(NamedTuple):
    """One patched object (``struct klp_object``)."""

    name: str
    """``vmlinux`` (``name == NULL``) or the module name."""
    funcs: tuple[KoFunc, ...]
    """Its functions, in array order."""


class KoState(NamedTuple):
    """``struct klp_state``: a system state the patch declares."""

    id: int
    """``id`` (non-zero)."""
    version: int
    """``version``."""


class KoCallback(NamedTuple):
    """One ``struct klp_callbacks`` member that is set."""

    object: str
    """The object it belongs to (``vmlinux`` or a module name)."""
    kind: str
    """``pre_patch``, ``post_patch``, ``pre_unpatch`` or ``post_unpatch``."""
    func: str | None
    """Symbol name of the callback; None when the symbol is stripped."""


class KoParam(NamedTuple):
    """A module parameter (``.modinfo`` ``parmtype=name:type``)."""

    name: str
    """Parameter name, as given on the insmod line."""
    type: str
    """``bool``, ``int``, ``charp``, ``array of int``, ..."""


@dataclass(frozen=True)
class LivepatchModule:
    """What a livepatch ``.ko`` holds, as ``klp_enable_patch()`` will see it."""

    path: str
    """The file, as given."""
    name: str | None
    """Module name (``.modinfo`` ``name=``, else ``.gnu.linkonce.this_module``)."""
    livepatch: bool
    """``.modinfo`` has ``livepatch=Y`` (``MODULE_INFO(livepatch, "Y")``); the
    kernel refuses a klp_patch of a module without it."""
    vermagic: str | None
    """``.modinfo`` ``vermagic=``."""
    layout: str | None
    """``klp_patch``, ``kpatch-build``, ``klp-build``, or None when the module
    builds its patch at run time from nothing in its data."""
    objects: tuple[KoObject, ...]
    """Patched objects in the order the kernel walks them."""
    states: tuple[KoState, ...] | None
    """``patch->states`` (klp_patch layout); None where data does not hold them."""
    replace: Setting
    """``patch->replace`` (mainline: atomic replace)."""
    replace_set: Setting
    """``patch->replace_set`` (the replace-set series)."""
    callbacks: tuple[KoCallback, ...]
    """The callbacks set, per object, in struct order."""
    params: tuple[KoParam, ...]
    """Module parameters, sorted by name."""
    rela_objects: tuple[str, ...]
    """Objects named by ``.klp.rela.<obj>.<sec>`` sections (``SHF_RELA_LIVEPATCH``):
    the objects whose non-exported symbols the patch references, sorted."""
    notes: tuple[str, ...] = ()
    """How the data was read and what could not be (human readers only)."""


@dataclass(frozen=True)
class PlainModule:
    """A module that is not a livepatch: what kallsyms will list of it."""

    path: str
    name: str | None
    """Module name, as for :class:`LivepatchModule`."""
    vermagic: str | None
    functions: tuple[str, ...]
    """``STT_FUNC`` symbols of its text, in symbol table order (the order of
    its kallsyms); the ``.init``/``.exit`` text is left out: it is gone (or
    never listed) once the module is live."""
    exports: tuple[str, ...]
    """EXPORT_SYMBOL()ed names (``__ksymtab_<name>`` symbols)."""
    params: tuple[KoParam, ...]


class _Sec(NamedTuple):
    idx: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int


class _Sym(NamedTuple):
    name: str
    type: int
    shndx: int
    value: int
    size: int


class _Ref(NamedTuple):
    """Where a relocated pointer points: a section and offset, and/or a symbol."""

    sec: int | None
    off: int
    sym: _Sym


#: Whether an element of an array starts at (section, offset).
_Check = Callable[[int, int], bool]


class _Struct(NamedTuple):
    size: int
    members: dict[str, int]


def read_module(path: str | Path) -> LivepatchModule | PlainModule:
    """Read any x86-64 module: a livepatch as :func:`read_ko` does, another
    module as a :class:`PlainModule`.  Raises :class:`KoError` for a file that
    is not a readable module."""
    spath = str(path)
    return _Reader(spath, _file_bytes(path), plain=True).read()


def read_module_bytes(path: str, data: bytes) -> LivepatchModule | PlainModule:
    """:func:`read_module` of bytes already in memory (a snapshot's member);
    *path* names them in messages."""
    return _Reader(path, data, plain=True).read()


def _file_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise KoError(str(path), "is a directory") from None
    except OSError as e:
        raise KoError(str(path), e.strerror or str(e)) from None


def read_ko(
    path: str | Path, *, replace: bool | None = None, replace_set: int | None = None
) -> LivepatchModule:
    """Read the livepatch module at ``path``.

    ``replace``/``replace_set``, when given, override what the file holds
    (source ``given``).  Raises :class:`KoError` for anything that is not a
    readable x86-64 livepatch module, :class:`ElfReaderMissing` without
    pyelftools.
    """
    spath = str(path)
    result = _Reader(spath, _file_bytes(path)).read()
    assert isinstance(result, LivepatchModule)  # only read_module() reads others
    if replace is not None:
        result = dataclasses.replace(result, replace=Setting(bool(replace), "given"))
    if replace_set is not None:
        result = dataclasses.replace(result, replace_set=Setting(int(replace_set), "given"))
    return result


def _kernel_version(vermagic: str | None) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", vermagic or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


class _Reader:
    def __init__(self, path: str, data: bytes, plain: bool = False):
        self.path = path
        self.data = data
        self.plain = plain
        self.notes: list[str] = []
        self.unnamed = 0
        self.secs: list[_Sec] = []
        self.syms: list[_Sym] = []
        self._relocs: dict[int, dict[int, tuple[int, int, int]]] | None = None
        self._funcs_at: dict[tuple[int, int], str] | None = None
        self._objects_at: dict[tuple[int, int], int] | None = None

    def fail(self, message: str) -> KoError:
        return KoError(self.path, message)

    # ------------------------------------------------------------ ELF level

    def _open(self) -> Any:
        try:
            from elftools.elf.elffile import ELFFile
        except ImportError:
            raise ElfReaderMissing(
                "reading .ko files needs pyelftools: pip install 'klpsim[elf]'"
            ) from None
        d = self.data
        if len(d) < 4 or d[:4] != b"\x7fELF":
            raise self.fail("not an ELF file")
        if len(d) < 64:
            raise self.fail(f"truncated: {len(d)} bytes, shorter than an ELF header")
        if d[4] == 1:
            raise self.fail("a 32-bit ELF file: klpsim reads x86-64 kernel modules only")
        if d[4] != 2 or d[5] != 1:
            raise self.fail(
                "not a little-endian 64-bit ELF file: klpsim reads x86-64 kernel modules only"
            )
        try:
            elf = ELFFile(io.BytesIO(d))
            machine = elf["e_machine"]
            etype = elf["e_type"]
        except Exception as e:  # pyelftools raises many kinds on bad headers
            raise self.fail(f"malformed ELF header ({_short(e)})") from None
        if machine != "EM_X86_64":
            num = int.from_bytes(d[0x12:0x14], "little")
            what = machine.removeprefix("EM_") if isinstance(machine, str) else "another machine"
            raise self.fail(
                f"an ELF file for {what} (e_machine {num}): klpsim reads x86-64 kernel modules only"
            )
        if etype != "ET_REL":
            raise self.fail(f"not a kernel module: ELF type {etype} (a .ko is ET_REL)")
        shoff, shnum, shentsize = elf["e_shoff"], elf["e_shnum"], elf["e_shentsize"]
        if shnum == 0 or shoff == 0:
            raise self.fail("no section headers")
        if shentsize != 64:
            raise self.fail(f"malformed ELF header (section header size {shentsize}, not 64)")
        if shoff + shnum * shentsize > len(d):
            raise self.fail(
                f"truncated: the section headers end at byte {shoff + shnum * shentsize}, "
                f"the file has {len(d)}"
            )
        return elf

    def _sections(self, elf: Any) -> None:
        name_offsets = []
        try:
            for i in range(elf.num_sections()):
                h = elf._get_section_header(i)
                sh_type = h["sh_type"]
                self.secs.append(
                    _Sec(
                        i,
                        "",
                        sh_type if isinstance(sh_type, int) else _SHT.get(sh_type, -1),
                        h["sh_flags"],
                        h["sh_offset"],
                        h["sh_size"],
                        h["sh_link"],
                        h["sh_info"],
                    )
                )
                name_offsets.append(h["sh_name"])
        except Exception as e:  # pyelftools raises many kinds on bad headers
            raise self.fail(f"malformed section headers ({_short(e)})") from None
        strndx = elf["e_shstrndx"]
        if not 0 < strndx < len(self.secs):
            raise self.fail(f"malformed ELF header (section name table index {strndx})")
        names = self._bytes(self.secs[strndx])
        if names is None:
            raise self.fail("truncated: the section name table runs past the end of the file")
        for i, start in enumerate(name_offsets):
            end = names.find(b"\0", start) if start < len(names) else -1
            name = names[start:end].decode("utf-8", "backslashreplace") if end >= 0 else ""
            self.secs[i] = self.secs[i]._replace(name=name)

    def _bytes(self, s: _Sec) -> bytes | None:
        """A section's contents, or None when it runs past the end of the file."""
        if s.type == _SHT_NOBITS:
            return None
        if s.offset + s.size > len(self.data):
            return None
        return self.data[s.offset : s.offset + s.size]

    def section(self, name: str) -> _Sec | None:
        for s in self.secs:
            if s.name == name:
                return s
        return None

    def _symbols(self) -> bool:
        symtab = next((s for s in self.secs if s.type == _SHT_SYMTAB), None)
        if symtab is None:
            return False
        raw = self._bytes(symtab)
        if raw is None:
            raise self.fail(f"truncated: {symtab.name or '.symtab'} runs past the end of the file")
        if not 0 < symtab.link < len(self.secs):
            raise self.fail(f"malformed symbol table (string table index {symtab.link})")
        strtab = self._bytes(self.secs[symtab.link]) or b""
        n = len(raw) // 24
        mv = memoryview(raw[: n * 24])
        for i in range(n):
            e = mv[i * 24 : i * 24 + 24]
            st_name = int.from_bytes(e[0:4], "little")
            info = e[4]
            shndx = int.from_bytes(e[6:8], "little")
            value = int.from_bytes(e[8:16], "little")
            size = int.from_bytes(e[16:24], "little")
            name = ""
            if st_name and st_name < len(strtab):
                end = strtab.find(b"\0", st_name)
                name = strtab[st_name : end if end >= 0 else len(strtab)].decode(
                    "utf-8", "backslashreplace"
                )
            self.syms.append(_Sym(name, info & 0xF, shndx, value, size))
        return True

    @property
    def relocs(self) -> dict[int, dict[int, tuple[int, int, int]]]:
        """Target section -> {offset: (symbol, type, addend)} of every RELA section
        applied to an allocated section (debug info is read separately)."""
        if self._relocs is None:
            self._relocs = {}
            for s in self.secs:
                if s.type != _SHT_RELA or not 0 < s.info < len(self.secs):
                    continue
                if not self.secs[s.info].flags & _SHF_ALLOC or s.flags & SHF_RELA_LIVEPATCH:
                    continue
                raw = self._bytes(s)
                if raw is None:
                    raise self.fail(f"truncated: {s.name} runs past the end of the file")
                table = self._relocs.setdefault(s.info, {})
                n = len(raw) // 24
                q = memoryview(raw[: n * 24]).cast("Q")
                for i in range(n):
                    off, info, addend = q[3 * i], q[3 * i + 1], q[3 * i + 2]
                    if addend >= 1 << 63:
                        addend -= 1 << 64
                    table[off] = (info >> 32, info & 0xFFFFFFFF, addend)
        return self._relocs

    def ref(self, sec: int, off: int) -> _Ref | None:
        """The pointer at ``sec``+``off``, if a 64-bit relocation fills it in."""
        r = self.relocs.get(sec, {}).get(off)
        if r is None or r[1] != _R_X86_64_64 or not 0 < r[0] < len(self.syms):
            return None
        sym = self.syms[r[0]]
        if sym.shndx == 0 or sym.shndx >= _SHN_LORESERVE or sym.shndx >= len(self.secs):
            return _Ref(None, r[2], sym)
        return _Ref(sym.shndx, sym.value + r[2], sym)

    def is_text(self, ref: _Ref | None) -> bool:
        return (
            ref is not None
            and ref.sec is not None
            and bool(self.secs[ref.sec].flags & _SHF_EXECINSTR)
        )

    def is_data(self, ref: _Ref | None) -> bool:
        if ref is None or ref.sec is None:
            return False
        f = self.secs[ref.sec].flags
        return bool(f & _SHF_ALLOC) and not f & _SHF_EXECINSTR

    def string(self, ref: _Ref | None) -> str | None:
        """The C string a relocated ``const char *`` points at."""
        if not self.is_data(ref):
            return None
        assert ref is not None and ref.sec is not None
        raw = self._bytes(self.secs[ref.sec])
        if raw is None or not 0 <= ref.off < len(raw):
            return None
        end = raw.find(b"\0", ref.off, ref.off + _MAX_STRING)
        if end < 0:
            return None
        return raw[ref.off : end].decode("utf-8", "backslashreplace")

    def func_name(self, ref: _Ref | None) -> str | None:
        """The function a relocated code pointer points at, by symbol name."""
        if ref is None:
            return None
        name = self._func_name(ref)
        if name is None:
            self.unnamed += 1
        return name

    def _func_name(self, ref: _Ref) -> str | None:
        if ref.sym.type == _STT_FUNC and ref.off == ref.sym.value and ref.sym.name:
            return ref.sym.name
        if ref.sec is None:
            return ref.sym.name or None
        if self._funcs_at is None:
            self._funcs_at = {}
            for s in self.syms:  # locals come first: prefer them to aliases
                if s.type == _STT_FUNC and s.name:
                    self._funcs_at.setdefault((s.shndx, s.value), s.name)
        return self._funcs_at.get((ref.sec, ref.off))

    def u(self, sec: int, off: int, size: int) -> int | None:
        """A little-endian unsigned integer at ``sec``+``off`` (0 in NOBITS)."""
        s = self.secs[sec]
        if off < 0 or off + size > s.size:
            return None
        if s.type == _SHT_NOBITS:
            return 0
        if s.offset + off + size > len(self.data):
            return None
        return int.from_bytes(self.data[s.offset + off : s.offset + off + size], "little")

    def object_size_at(self, sec: int, off: int) -> int | None:
        """st_size of the data symbol (``objs``, ``funcs``) that starts at sec+off."""
        if self._objects_at is None:
            self._objects_at = {}
            for s in self.syms:
                if s.type == _STT_OBJECT and s.size:
                    self._objects_at.setdefault((s.shndx, s.value), s.size)
        return self._objects_at.get((sec, off))

    # --------------------------------------------------------------- modinfo

    def _modinfo(self) -> list[tuple[str, str]]:
        s = self.section(".modinfo")
        if s is None:
            return []
        raw = self._bytes(s)
        if raw is None:
            raise self.fail("truncated: .modinfo runs past the end of the file")
        out = []
        for item in raw.split(b"\0"):
            key, eq, value = item.partition(b"=")
            if eq:
                out.append(
                    (
                        key.decode("utf-8", "backslashreplace"),
                        value.decode("utf-8", "backslashreplace"),
                    )
                )
        return out

    def _this_module_name(self) -> str | None:
        """``struct module.name`` (offset 24 on x86-64; MODULE_NAME_LEN is 56)."""
        s = self.section(".gnu.linkonce.this_module")
        if s is None:
            return None
        raw = self._bytes(s)
        if raw is None or len(raw) < 24 + 56:
            return None
        name = raw[24 : 24 + 56].split(b"\0")[0]
        if not name or not re.fullmatch(rb"[A-Za-z0-9_-]+", name):
            return None
        return name.decode()

    # ---------------------------------------------------------------- read

    def _plain_module(
        self, name: str | None, vermagic: str | None, params: tuple[KoParam, ...]
    ) -> PlainModule:
        texts = {
            s.idx
            for s in self.secs
            if s.flags & _SHF_EXECINSTR and not s.name.startswith((".init.", ".exit."))
        }
        funcs = tuple(
            sym.name
            for sym in self.syms
            if sym.type == _STT_FUNC and sym.shndx in texts and sym.name
        )
        exports = tuple(
            sym.name.removeprefix("__ksymtab_")
            for sym in self.syms
            if sym.name.startswith("__ksymtab_") and sym.type == _STT_OBJECT
        )
        return PlainModule(self.path, name, vermagic, funcs, exports, params)

    def read(self) -> LivepatchModule | PlainModule:
        elf = self._open()
        self._sections(elf)
        info = self._modinfo()
        keys = {k: v for k, v in reversed(info)}  # the first of a repeated key wins
        livepatch = keys.get("livepatch") == "Y"
        name = keys.get("name") or self._this_module_name()
        vermagic = keys.get("vermagic")
        params = tuple(
            sorted(KoParam(*v.split(":", 1)) for k, v in info if k == "parmtype" and ":" in v)
        )
        rela_objects = tuple(
            sorted(
                {
                    s.name[len(".klp.rela.") :].split(".")[0]
                    for s in self.secs
                    if s.name.startswith(".klp.rela.") and s.flags & SHF_RELA_LIVEPATCH
                }
                - {""}
            )
        )
        rs_hint = _replace_set_hint(keys.get("livepatch_replace_set"), self.notes)

        klp_build = self._klp_build_sections()
        kpatch = self.section(".kpatch.funcs")
        if not self._symbols():
            if livepatch or klp_build or kpatch:
                raise self.fail(
                    "no symbol table (stripped with --strip-all?): the patched functions, "
                    "objects and callbacks cannot be read"
                )
            if not info:
                raise self.fail("not a kernel module: no .modinfo section")
            if self.plain:
                raise self.fail("no symbol table (stripped with --strip-all?)")
            raise self.fail("not a livepatch module: no livepatch=Y in .modinfo")

        states: tuple[KoState, ...] | None = None
        callbacks: list[KoCallback] = []
        unknown = Setting(None, "unknown")
        replace, replace_set = unknown, rs_hint or unknown
        if klp_build:
            layout: str | None = LAYOUT_KLP_BUILD
            objects = self._read_klp_build(*klp_build, callbacks)
        elif kpatch is not None:
            layout = LAYOUT_KPATCH
            objects = self._read_kpatch(kpatch, callbacks)
        else:
            found = self._read_klp_patch(vermagic, rs_hint, callbacks)
            if found is None:
                if not livepatch:
                    if not info:
                        raise self.fail("not a kernel module: no .modinfo section")
                    if self.plain:
                        return self._plain_module(name, vermagic, params)
                    raise self.fail(
                        "not a livepatch module: no livepatch=Y in .modinfo, and no klp_patch, "
                        ".kpatch.funcs or .init.klp_objects"
                    )
                layout, objects = None, []
                self.notes.append(
                    "no static klp_patch, .kpatch.funcs or .init.klp_objects: "
                    "the patch is built at run time"
                )
            else:
                layout = LAYOUT_KLP_PATCH
                objects, states, replace, replace_set = found
        if not livepatch:
            self.notes.append(
                "no livepatch=Y in .modinfo: klp_enable_patch() refuses it "
                "(is not marked as a livepatch module)"
            )
        self._orphan_klp_syms()
        if self.unnamed:
            self.notes.append(
                f"{self.unnamed} function pointer(s) point where no symbol is left "
                "(local symbols stripped?): shown as ?"
            )
        return LivepatchModule(
            path=self.path,
            name=name,
            livepatch=livepatch,
            vermagic=vermagic,
            layout=layout,
            objects=tuple(objects),
            states=states,
            replace=replace,
            replace_set=replace_set,
            callbacks=tuple(callbacks),
            params=params,
            rela_objects=rela_objects,
            notes=tuple(self.notes),
        )

    def _orphan_klp_syms(self) -> None:
        """Note ``.klp.sym`` symbols that no ``.klp.rela`` section uses.

        binutils' strip and objcopy rewrite ``.klp.rela`` sections as ordinary
        ``.rela.<sec>`` sections, without SHF_RELA_LIVEPATCH and (2.40) without
        their symbol (binutils BZ 24456, kpatch #1009): the references the
        patch makes to non-exported symbols are gone.
        """
        klp = {i for i, s in enumerate(self.syms) if s.shndx == SHN_LIVEPATCH}
        if not klp:
            return
        used: set[int] = set()
        for s in self.secs:
            if s.type != _SHT_RELA or not s.flags & SHF_RELA_LIVEPATCH:
                continue
            raw = self._bytes(s) or b""
            n = len(raw) // 24
            q = memoryview(raw[: n * 24]).cast("Q")
            used.update(q[3 * i + 1] >> 32 for i in range(n))
        lost = sorted(
            {
                self.syms[i].name[len(".klp.sym.") :].split(".")[0]
                for i in klp - used
                if self.syms[i].name.startswith(".klp.sym.")
            }
        )
        if lost:
            self.notes.append(
                f".klp.sym symbols of {', '.join(lost)} that no .klp.rela section uses: "
                "the .klp.rela sections were rewritten (binutils strip and objcopy do, "
                "BZ 24456), so the patch's references to non-exported symbols are lost"
            )

    # ------------------------------------------------------ layout: klp_patch

    def _read_klp_patch(
        self, vermagic: str | None, rs_hint: Setting | None, callbacks: list[KoCallback]
    ) -> tuple[list[KoObject], tuple[KoState, ...], Setting, Setting] | None:
        """Find the static ``struct klp_patch``: ``mod`` (offset 0) relocates to
        ``__this_module`` and ``objs`` (offset 8) into a data section."""
        this_module = {i for i, s in enumerate(self.syms) if s.name == "__this_module"}
        candidates: list[tuple[int, int, _Ref]] = []
        for sec, table in sorted(self.relocs.items()):
            if self.secs[sec].flags & _SHF_EXECINSTR or self.secs[sec].type == _SHT_NOBITS:
                continue
            for off, (symi, rtype, _addend) in sorted(table.items()):
                if symi in this_module and rtype == _R_X86_64_64:
                    objs = self.ref(sec, off + 8)
                    if objs is not None and self.is_data(objs):
                        candidates.append((sec, off, objs))
        if not candidates:
            return None
        version = _kernel_version(vermagic)
        dwarf = _dwarf_structs(self)
        func_t, obj_t, patch_t = (dwarf.get(n) for n in ("klp_func", "klp_object", "klp_patch"))
        if dwarf:
            self.notes.append(
                "struct sizes from DWARF: " + ", ".join(f"{n} {s.size}" for n, s in dwarf.items())
            )
        else:
            self.notes.append("no DWARF: struct sizes from the relocation pattern")
            if version is None:
                self.notes.append(
                    "no kernel version in vermagic: assuming the klp_patch of 5.5 and later"
                )
        empty: tuple[int, int, tuple[int, int] | None] | None = None
        for sec, off, objs_ref in candidates:
            assert objs_ref.sec is not None
            starts = {(sec, off)}
            states_ref = self._states_ref(sec, off, patch_t, version)
            if states_ref is not None:
                starts.add(states_ref)
            objects = self._klp_objects(
                (objs_ref.sec, objs_ref.off), starts, func_t, obj_t, callbacks
            )
            if objects is None:
                continue
            if not objects:
                # Only the terminator (a states-only patch; the compiler puts
                # the all-zero array in .bss): taken if no candidate has objects.
                empty = empty or (sec, off, states_ref)
                continue
            states = self._klp_states(states_ref)
            replace, replace_set = self._klp_replace(sec, off, patch_t, version, rs_hint)
            return objects, states, replace, replace_set
        if empty is not None:
            sec, off, states_ref = empty
            states = self._klp_states(states_ref)
            replace, replace_set = self._klp_replace(sec, off, patch_t, version, rs_hint)
            return [], states, replace, replace_set
        return None

    def _learn_stride(
        self,
        bases: list[tuple[int, int]],
        valid: _Check,
        present: _Check,
        minimum: int,
        limit_of: Callable[[int, int], int],
    ) -> int | None:
        """The element size of arrays of one struct type, from the first array
        that shows it: its symbol's st_size ((entries + terminator) * size), or
        the distance to its second element when nothing else starts between."""
        for sec, base in bases:
            total = self.object_size_at(sec, base)
            if total and base + total <= self.secs[sec].size:
                for stride in range(minimum, total // 2 + 1, 8):
                    if total % stride:
                        continue
                    n = total // stride - 1
                    if all(valid(sec, base + i * stride) for i in range(n)) and not present(
                        sec, base + n * stride
                    ):
                        return stride
        for sec, base in bases:
            if not valid(sec, base):
                continue
            limit = limit_of(sec, base)
            for off in sorted(self.relocs.get(sec, {})):
                if (
                    minimum <= off - base
                    and off < limit
                    and (off - base) % 8 == 0
                    and valid(sec, off)
                ):
                    return off - base
        return None

    def _walk(
        self, sec: int, base: int, stride: int | None, present: _Check, limit: int
    ) -> list[int]:
        """Offsets of the elements of a terminated array at ``base``."""
        if stride is None:
            # No size known: one element or none (where a second would start
            # cannot be told, and only a terminator can follow one anyway).
            return [base] if present(sec, base) else []
        out = []
        off = base
        while off < limit and present(sec, off):
            out.append(off)
            off += stride
            if len(out) > _MAX_ENTRIES:
                raise self.fail(f"{self.secs[sec].name}: an array with no terminator")
        return out

    def _klp_objects(
        self,
        objs: tuple[int, int],
        starts: set[tuple[int, int]],
        func_t: _Struct | None,
        obj_t: _Struct | None,
        callbacks: list[KoCallback],
    ) -> list[KoObject] | None:
        """``patch->objs``: the klp_object array, then each object's klp_func array.

        ``starts`` holds the other known structs (the patch, its states); each
        funcs array found is added, as the end of any array before it.
        """
        om = obj_t.members if obj_t else {}
        o_name, o_funcs, o_cb = om.get("name", 0), om.get("funcs", 8), om.get("callbacks", 16)
        fm = func_t.members if func_t else {}
        f_name, f_new = fm.get("old_name", 0), fm.get("new_func", 8)
        f_pos = fm.get("old_sympos", 16)
        ref = self.ref

        def limit_of(sec: int, base: int) -> int:
            return min((o for s, o in starts if s == sec and o > base), default=1 << 62)

        def name_ok(r: _Ref | None) -> bool:
            # A string literal: in a read-only section, not empty.
            return (
                self.is_data(r)
                and r is not None
                and r.sec is not None
                and not self.secs[r.sec].flags & _SHF_WRITE
                and bool(self.string(r))
            )

        def func_valid(sec: int, off: int) -> bool:
            return name_ok(ref(sec, off + f_name)) and self.is_text(ref(sec, off + f_new))

        def func_present(sec: int, off: int) -> bool:
            # klp_for_each_func_static(): old_name || new_func || old_sympos
            return (
                ref(sec, off + f_name) is not None
                or ref(sec, off + f_new) is not None
                or bool(self.u(sec, off + f_pos, 8))
            )

        def obj_valid(sec: int, off: int) -> bool:
            name, funcs = ref(sec, off + o_name), ref(sec, off + o_funcs)
            if not self.is_data(funcs) or not (name is None or name_ok(name)):
                return False
            assert funcs is not None and funcs.sec is not None
            # funcs: a function, or just the terminator
            if not (func_valid(funcs.sec, funcs.off) or not func_present(funcs.sec, funcs.off)):
                return False
            return all(
                cb is None or self.is_text(cb)
                for cb in (ref(sec, off + o_cb + 8 * i) for i in range(4))
            )

        def obj_present(sec: int, off: int) -> bool:
            # klp_for_each_object_static(): until funcs == NULL && name == NULL
            return ref(sec, off + o_funcs) is not None or ref(sec, off + o_name) is not None

        if not obj_present(*objs):
            return []  # klp_for_each_object_static() stops at once
        if not obj_valid(*objs):
            return None
        first = ref(objs[0], objs[1] + o_funcs)
        if first is not None and first.sec is not None:
            starts.add((first.sec, first.off))  # the objects end before it
        ostride = obj_t.size if obj_t else None
        if ostride is None:
            ostride = self._learn_stride([objs], obj_valid, obj_present, 56, limit_of)
            if ostride is not None:
                self.notes.append(f"klp_object size {ostride} from the relocation pattern")
        offs = self._walk(objs[0], objs[1], ostride, obj_present, limit_of(*objs))
        starts.add(objs)
        funcs_of: list[tuple[int, int] | None] = []
        for off in offs:
            r = ref(objs[0], off + o_funcs)
            base = (r.sec, r.off) if r is not None and r.sec is not None else None
            funcs_of.append(base)
            if base is not None:
                starts.add(base)
        bases = sorted({b for b in funcs_of if b is not None})
        fstride = func_t.size if func_t else None
        if fstride is None:
            fstride = self._learn_stride(bases, func_valid, func_present, 24, limit_of)
            if fstride is not None:
                self.notes.append(f"klp_func size {fstride} from the relocation pattern")
            elif any(len(self._walk(s, b, None, func_present, 0)) for s, b in bases):
                self.notes.append(
                    "klp_func size unknown (no DWARF, no symbol sizes, no array of two): "
                    "each array read as one function"
                )
        objects = []
        for off, fbase in zip(offs, funcs_of, strict=True):
            name_ref = ref(objs[0], off + o_name)
            name = "vmlinux" if name_ref is None else (self.string(name_ref) or "?")
            for i, kind in enumerate(CALLBACK_KINDS):
                cb = ref(objs[0], off + o_cb + 8 * i)
                if cb is not None:
                    callbacks.append(KoCallback(name, kind, self.func_name(cb)))
            funcs = []
            if fbase is not None:
                for fo in self._walk(*fbase, fstride, func_present, limit_of(*fbase)):
                    funcs.append(
                        KoFunc(
                            self.string(ref(fbase[0], fo + f_name)),
                            self.u(fbase[0], fo + f_pos, 8),
                            self.func_name(ref(fbase[0], fo + f_new)),
                        )
                    )
            objects.append(KoObject(name, tuple(funcs)))
        return objects

    def _states_ref(
        self, sec: int, patch: int, patch_t: _Struct | None, version: tuple[int, int] | None
    ) -> tuple[int, int] | None:
        """Where ``patch->states`` points, if it is set.

        Prior to 5.5 ("livepatch: Basic API to track system state changes")
        there is no ``states`` member.
        """
        if patch_t is not None:
            off = patch_t.members.get("states")
        else:
            off = None if version is not None and version < (5, 5) else 16
        if off is None:
            return None
        r = self.ref(sec, patch + off)
        if r is None or r.sec is None or not self.is_data(r):
            return None
        return r.sec, r.off

    def _klp_states(self, where: tuple[int, int] | None) -> tuple[KoState, ...]:
        """``struct klp_state {unsigned long id; unsigned int version; void *data;}``
        (24 bytes), ended by ``id == 0``."""
        if where is None:
            return ()
        sec, pos = where
        out = []
        while True:
            sid = self.u(sec, pos, 8)
            if not sid:
                break
            out.append(KoState(sid, self.u(sec, pos + 8, 4) or 0))
            pos += 24
            if len(out) > _MAX_ENTRIES:
                raise self.fail(f"{self.secs[sec].name}: a klp_state array with no terminator")
        return tuple(out)

    def _klp_replace(
        self,
        sec: int,
        patch: int,
        patch_t: _Struct | None,
        version: tuple[int, int] | None,
        rs_hint: Setting | None,
    ) -> tuple[Setting, Setting]:
        """``patch->replace`` (bool, mainline) or ``patch->replace_set`` (u32, the
        replace-set series), which sit at the same offset.

        ``replace`` came in 5.1, e1452b607c48 ("livepatch: Add atomic replace"),
        at offset 16; ``states`` moved it to 24 in 5.5.  The replace-set series
        turns it into ``unsigned int replace_set``.
        """
        absent = Setting(None, "absent")
        if patch_t is not None:
            m = patch_t.members
            replace = absent
            replace_set = absent
            if "replace" in m:
                b = self.u(sec, patch + m["replace"], 1)
                replace = Setting(bool(b), "data") if b is not None else Setting(None, "unknown")
            if "replace_set" in m:
                v = self.u(sec, patch + m["replace_set"], 4)
                replace_set = Setting(v, "data") if v is not None else Setting(None, "unknown")
            return replace, replace_set
        if version is not None and version < (5, 1):
            return absent, absent
        if version is not None and version < (5, 5):
            b = self.u(sec, patch + 16, 1)
            return (Setting(bool(b), "data") if b is not None else Setting(None, "unknown")), absent
        raw = self.u(sec, patch + 24, 4)
        if raw is None:
            self.notes.append("patch+24 is past the end of its section")
            return Setting(None, "unknown"), rs_hint or Setting(None, "unknown")
        if rs_hint is not None:
            if rs_hint.value != raw:
                self.notes.append(
                    f".modinfo livepatch_replace_set={rs_hint.value}, but the klp_patch "
                    f"holds {raw}: the kernel uses the klp_patch"
                )
            return absent, Setting(raw, "data")
        if raw > 1:
            self.notes.append(
                f"patch+24 holds {raw}: a u32 replace_set (a bool replace holds 0 or 1)"
            )
            return absent, Setting(raw, "data")
        self.notes.append(
            f"patch+24 holds {raw}: bool replace on mainline kernels, u32 replace_set on "
            "replace-set kernels; neither DWARF nor .modinfo livepatch_replace_set says "
            "which (give --replace or --replace-set)"
        )
        return Setting(None, "ambiguous", raw), Setting(None, "ambiguous", raw)

    # --------------------------------------------------- layout: kpatch-build

    def _read_kpatch(self, sec: _Sec, callbacks: list[KoCallback]) -> list[KoObject]:
        """``.kpatch.funcs``: ``struct kpatch_patch_func { unsigned long new_addr,
        new_size, old_addr, old_size, sympos; char *name, *objname; }`` upstream.

        ``new_addr`` relocates to the new function, ``name`` and ``objname``
        into ``.kpatch.strings``.  Forks add members (openEuler: ``ref_name``,
        ``ref_offset``), so the entry size is derived: the new_addr relocations
        are one per entry, evenly spaced, and fill the section.  The first two
        string members are name and objname; sympos is the member before name
        (kpatch before sympos existed had name at 32 and no sympos).
        """
        table = self.relocs.get(sec.idx, {})
        anchors = sorted(o for o in table if self.is_text(self.ref(sec.idx, o)))
        stride = self._even_stride(sec, anchors, "new_addr")
        if stride is None:
            return []
        strs = sorted(
            o - anchors[0]
            for o in table
            if anchors[0] < o < anchors[0] + stride and self.is_data(self.ref(sec.idx, o))
        )
        if len(strs) < 2:
            raise self.fail(f"{sec.name}: no name and objname pointers in its entries")
        name_off, objname_off = strs[0], strs[1]
        if stride != 56:
            self.notes.append(f"{sec.name}: {stride}-byte entries (56 upstream): a fork")
        by_object: dict[str, list[KoFunc]] = {}
        for a in anchors:
            objname = self.string(self.ref(sec.idx, a + objname_off)) or "?"
            by_object.setdefault(objname, []).append(
                KoFunc(
                    self.string(self.ref(sec.idx, a + name_off)),
                    self.u(sec.idx, a + name_off - 8, 8) if name_off >= 40 else None,
                    self.func_name(self.ref(sec.idx, a)),
                )
            )
        # kpatch-patch.h: struct kpatch_*_callback { fn; char *objname; } per kind;
        # kpatch.lds.S ends each section with a zero quad.
        for kind in CALLBACK_KINDS:
            cs = self.section(f".kpatch.callbacks.{kind}")
            if cs is None:
                continue
            for off in sorted(self.relocs.get(cs.idx, {})):
                fn = self.ref(cs.idx, off)
                if off % 16 == 0 and self.is_text(fn):
                    obj = self.string(self.ref(cs.idx, off + 8)) or "vmlinux"
                    callbacks.append(KoCallback(obj, kind, self.func_name(fn)))
                    by_object.setdefault(obj, [])
        order = {kind: i for i, kind in enumerate(CALLBACK_KINDS)}
        names = list(by_object)
        callbacks.sort(key=lambda c: (names.index(c.object), order[c.kind]))
        return [KoObject(n, tuple(f)) for n, f in by_object.items()]

    def _even_stride(self, sec: _Sec, anchors: list[int], what: str) -> int | None:
        """Entry size of a section of ``len(anchors)`` entries, one anchor each."""
        if not anchors:
            return None
        n = len(anchors)
        if sec.size % n or sec.size // n < 8:
            raise self.fail(
                f"{sec.name}: {sec.size} bytes do not hold {n} entries ({n} {what} pointers)"
            )
        stride = sec.size // n
        first = anchors[0]
        if first >= stride or anchors != [first + i * stride for i in range(n)]:
            raise self.fail(f"{sec.name}: its {what} pointers are not evenly spaced")
        return stride

    # ------------------------------------------------------ layout: klp-build

    def _klp_build_sections(self) -> tuple[_Sec, _Sec] | None:
        for objs, funcs in (
            (".init.klp_objects", ".init.klp_funcs"),
            ("__klp_objects", "__klp_funcs"),
        ):
            o, f = self.section(objs), self.section(funcs)
            if o is not None:
                if f is None:
                    raise self.fail(f"{objs} without {funcs}")
                return o, f
        return None

    def _read_klp_build(
        self, osec: _Sec, fsec: _Sec, callbacks: list[KoCallback]
    ) -> list[KoObject]:
        """``struct klp_object_ext { const char *name; struct klp_func_ext *funcs;
        struct klp_callbacks callbacks; unsigned int nr_funcs; }`` (64 bytes) and
        ``struct klp_func_ext { const char *old_name; void *new_func; unsigned
        long sympos; }`` (24 bytes), include/linux/livepatch_external.h."""
        table = self.relocs.get(osec.idx, {})
        funcs_ptrs = sorted(
            o
            for o in table
            if (r := self.ref(osec.idx, o)) is not None and r.sec == fsec.idx and o >= 8
        )
        stride = self._even_stride(osec, [o - 8 for o in funcs_ptrs], "funcs")
        if stride is None:
            return []
        if stride != 64:
            self.notes.append(f"{osec.name}: {stride}-byte klp_object_ext (64 upstream)")
        fstride = 24
        objects = []
        for p in funcs_ptrs:
            base = p - 8
            name_ref = self.ref(osec.idx, base)
            name = "vmlinux" if name_ref is None else (self.string(name_ref) or "?")
            for i, kind in enumerate(CALLBACK_KINDS):
                cb = self.ref(osec.idx, base + 16 + 8 * i)
                if cb is not None:
                    callbacks.append(KoCallback(name, kind, self.func_name(cb)))
            nr = self.u(osec.idx, base + 56, 4) if stride >= 60 else None
            fref = self.ref(osec.idx, p)
            assert fref is not None
            if nr is None or fref.off + nr * fstride > fsec.size or fref.off < 0:
                raise self.fail(
                    f"{osec.name}: object {name}: nr_funcs {nr} runs past the end of {fsec.name}"
                )
            funcs = []
            for j in range(nr):
                fo = fref.off + j * fstride
                funcs.append(
                    KoFunc(
                        self.string(self.ref(fsec.idx, fo)),
                        self.u(fsec.idx, fo + 16, 8),
                        self.func_name(self.ref(fsec.idx, fo + 8)),
                    )
                )
            objects.append(KoObject(name, tuple(funcs)))
        return objects


_SHT = {
    "SHT_NULL": 0,
    "SHT_PROGBITS": 1,
    "SHT_SYMTAB": 2,
    "SHT_STRTAB": 3,
    "SHT_RELA": 4,
    "SHT_NOBITS": 8,
    "SHT_REL": 9,
}


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}"[:120] if text else type(e).__name__


def _replace_set_hint(value: str | None, notes: list[str]) -> Setting | None:
    """``MODULE_INFO(livepatch_replace_set, "N")``: klp-build and kpatch-build
    compile replace_set into init code; this modinfo key states it in data."""
    if value is None:
        return None
    if not value.isdigit() or int(value) >= 1 << 32:
        notes.append(f"ignored .modinfo livepatch_replace_set={value!r}: not a u32")
        return None
    return Setting(int(value), "modinfo")


# ------------------------------------------------------------------- DWARF

_WANTED = ("klp_func", "klp_object", "klp_patch")


def _dwarf_structs(r: _Reader) -> dict[str, _Struct]:
    """Byte size and member offsets of struct klp_func, klp_object and klp_patch
    from the module's DWARF, or {} (no DWARF, or none that can be read).

    Only those three DIEs are parsed: their names are found in .debug_str
    (through the relocations of .debug_info, which is not relocated in an
    ET_REL file) or inline, and each struct's members are read in sequence.
    """
    info = r.section(".debug_info")
    if info is None or r.section(".debug_abbrev") is None:
        return {}
    try:
        return _dwarf_structs_unchecked(r, info)
    except KoError:
        raise
    except Exception as e:  # a malformed DWARF must not hide the rest
        r.notes.append(f"DWARF unreadable ({_short(e)}): using the relocation pattern")
        return {}


def _dwarf_structs_unchecked(r: _Reader, info: _Sec) -> dict[str, _Struct]:
    from elftools.dwarf.die import DIE
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(r.data))
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    info_bytes = r._bytes(info) or b""
    strsec = r.section(".debug_str")
    strs = (r._bytes(strsec) if strsec else None) or b""
    # .debug_info offset -> .debug_str offset, for DW_FORM_strp attributes.
    strp: dict[int, int] = {}
    for s in r.secs:
        if s.type == _SHT_RELA and s.info == info.idx:
            raw = r._bytes(s) or b""
            n = len(raw) // 24
            q = memoryview(raw[: n * 24]).cast("Q")
            for i in range(n):
                rinfo = q[3 * i + 1]
                symi = rinfo >> 32
                if rinfo & 0xFFFFFFFF == _R_X86_64_32 and symi < len(r.syms):
                    sym = r.syms[symi]
                    if strsec is not None and sym.shndx == strsec.idx:
                        strp[q[3 * i]] = sym.value + q[3 * i + 2]
    cus = []
    for cu in dwarf.iter_CUs():
        cus.append((cu.cu_offset, cu.cu_offset + cu["unit_length"] + 4, cu))
        if len(cus) > 10000:
            break

    def cu_of(off: int) -> Any:
        return next((cu for start, end, cu in cus if start < off < end), None)

    def name_of(die: Any) -> str | None:
        a = die.attributes.get("DW_AT_name")
        if a is None:
            return None
        if a.form == "DW_FORM_strp":
            so = strp.get(a.offset, a.value if not strp else None)
            if so is None or not 0 <= so < len(strs):
                return None
            end = strs.find(b"\0", so)
            return strs[so:end].decode("utf-8", "replace") if end >= 0 else None
        v = a.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else None

    def member_offset(die: Any) -> int | None:
        a = die.attributes.get("DW_AT_data_member_location")
        if a is None:
            return 0  # a union member, or the first member of old producers
        if isinstance(a.value, int):
            return a.value
        v = list(a.value)  # DWARF 2: DW_OP_plus_uconst <n>
        return v[1] if len(v) == 2 and v[0] == 0x23 else None

    found: dict[str, _Struct] = {}
    for want in _WANTED:
        target = want.encode() + b"\0"
        positions = []
        str_offs: set[int] = set()
        i = strs.find(target)
        while i >= 0 and len(str_offs) < 64:
            str_offs.add(i)
            i = strs.find(target, i + 1)
        positions += sorted(o for o, so in strp.items() if so in str_offs)
        i = info_bytes.find(target)
        while i >= 0 and len(positions) < 128:
            positions.append(i)
            i = info_bytes.find(target, i + 1)
        for pos in positions:
            st = _struct_at(DIE, cu_of, info, pos, name_of, member_offset, want)
            if st is not None:
                found[want] = st
                break
    return found


def _struct_at(
    DIE: Any,
    cu_of: Callable[[int], Any],
    info: _Sec,
    pos: int,
    name_of: Callable[[Any], str | None],
    member_offset: Callable[[Any], int | None],
    want: str,
) -> _Struct | None:
    """The struct DIE whose DW_AT_name attribute is at ``pos`` (names come first)."""
    cu = cu_of(pos)
    if cu is None:
        return None
    stream = cu.dwarfinfo.debug_info_sec.stream
    for k in range(1, 5):
        try:
            die = DIE(cu, stream, pos - k)
        except Exception:
            continue
        a = die.attributes.get("DW_AT_name")
        if (
            die.tag != "DW_TAG_structure_type"
            or a is None
            or a.offset != pos
            or "DW_AT_declaration" in die.attributes
            or name_of(die) != want
            or not die.has_children
        ):
            continue
        size = die.attributes.get("DW_AT_byte_size")
        if size is None or not isinstance(size.value, int):
            return None
        members: dict[str, int] = {}
        off = die.offset + die.size
        end = cu.cu_offset + cu["unit_length"] + 4
        for _ in range(256):
            if not die.offset < off < end:
                break
            child = DIE(cu, stream, off)
            if child.is_null():
                break
            if child.tag == "DW_TAG_member":
                n, mo = name_of(child), member_offset(child)
                if n is not None and mo is not None:
                    members[n] = mo
            if child.has_children or child.size <= 0:
                break  # members have none; anything else ends the walk
            off += child.size
        return _Struct(size.value, members)
    return None
