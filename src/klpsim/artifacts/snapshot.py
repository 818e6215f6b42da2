"""Host snapshots: what a real host's livepatch state was, read from an archive.

:func:`read_snapshot` reads the archive that ``klpsim snapshot`` (or its sh
twin) writes, as a ``.tar.gz`` or unpacked, and also a sosreport or a SUSE
supportconfig archive (see :mod:`klpsim.artifacts.foreign`).  The result is
frozen data: the livepatches in ``klp_patches`` order with their objects and
functions, the loaded modules, kallsyms, every task with its stack and
``patch_state``, and the kprobes, ftrace users and error-injection list.

Whatever the snapshot cannot tell is an :class:`Unknown` carrying the reason
(a stack unreadable without root, a list debugfs did not show, a value
supportconfig does not collect), never a guess.  docs/snapshot.md describes
the archive.
"""

from __future__ import annotations

import functools
import gzip
import lzma
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeAlias, TypeVar

from .kallsyms import KallsymsError, SymbolTable
from .procfs import StackFrame, parse_proc_modules, parse_stack, parse_stat
from .tracefs import (
    FtraceRecord,
    InjectableEntry,
    KprobeEntry,
    parse_enabled_functions,
    parse_injectable,
    parse_kprobes,
)

__all__ = [
    "FORMAT",
    "ItemStatus",
    "KoFile",
    "Livepatch",
    "LivepatchFunc",
    "LivepatchObject",
    "LoadedModule",
    "Manifest",
    "PatchOrder",
    "Snapshot",
    "SnapshotError",
    "Task",
    "Unknown",
    "read_snapshot",
]

#: The archive format this reader understands (MANIFEST ``format:`` line).
FORMAT = 1
_TOP = "klpsim-snapshot"
#: Refuse to hold more than this much of an unknown archive in memory.
_MAX_BYTES = 1 << 30


class SnapshotError(Exception):
    """A snapshot that cannot be read: one line naming the file (exit status 2)."""


class Unknown(NamedTuple):
    """A fact the snapshot cannot tell."""

    reason: str
    """Why, e.g. ``/proc/42/task/42/stack: unreadable without root``."""

    def __bool__(self) -> bool:  # never mistaken for a known true value
        return False


# ------------------------------------------------------------------ types


class ItemStatus(NamedTuple):
    """One ``item:`` line of the MANIFEST: what became of one wanted path."""

    path: str
    """Host path without the leading ``/``, e.g. ``proc/kallsyms``."""
    status: str
    """``collected``, ``absent``, ``unreadable`` or ``vanished``."""
    reason: str
    """``no-such-file``, ``debugfs-not-mounted``, ``tracefs-not-mounted``,
    ``not-root``, ``write-only``, ``read-failed``, or empty."""


class Manifest(NamedTuple):
    """The MANIFEST member of a klpsim snapshot."""

    format: int
    """Archive layout version (1)."""
    klpsim: str
    """klpsim version of the collector."""
    collector: str
    """``python`` (klpsim snapshot) or ``sh`` (the POSIX sh collector)."""
    date: str
    """UTC time of the collection, ISO 8601."""
    release: str
    """``uname -r`` of the host."""
    uid: int
    """The collector's uid."""
    root: bool
    """Whether it ran as root (stacks and kallsyms addresses need root)."""
    kallsyms_addresses: str
    """``real``, ``zero`` (read without root) or ``none`` (not collected)."""
    testing_root: str | None
    """The fake tree the collector read instead of ``/`` (tests only), or None."""
    items: tuple[ItemStatus, ...]
    """Every wanted item, and every per-task or per-attribute read that failed."""
    kos: tuple[tuple[str, str, str], ...]
    """``(module, status, member path or reason)`` for each livepatch module's .ko."""

    def item(self, path: str) -> ItemStatus | None:
        for it in self.items:
            if it.path == path:
                return it
        return None


class LivepatchFunc(NamedTuple):
    """A ``<func>,<sympos>`` directory (struct klp_func)."""

    name: str
    """old_name."""
    sympos: int
    """As sysfs shows it: klp_init_func() prints old_sympos, or 1 when it is 0,
    so 1 stands for both 0 and 1."""


class LivepatchObject(NamedTuple):
    """An object directory (struct klp_object): ``vmlinux`` or a module name."""

    name: str
    """``vmlinux`` or the patched module's name (present even while it is not loaded)."""
    patched: bool | Unknown
    """obj->patched (the ``patched`` attribute, 6.1+)."""
    funcs: tuple[LivepatchFunc, ...]
    """Its functions, in sysfs name order (sysfs does not keep the array order)."""


class Livepatch(NamedTuple):
    """One ``/sys/kernel/livepatch/<patch>`` directory (struct klp_patch)."""

    name: str
    """The patch module's name."""
    enabled: bool | Unknown
    """patch->enabled."""
    transition: bool | Unknown
    """Whether this patch is klp_transition_patch."""
    replace: bool | Unknown
    """patch->replace (the ``replace`` attribute, 6.11+)."""
    replace_set: int | Unknown
    """patch->replace_set (the replace-set series' ``replace_set`` attribute)."""
    stack_order: int | Unknown
    """1-based position in klp_patches (the ``stack_order`` attribute, 6.14+)."""
    attributes: frozenset[str]
    """The attribute files present, readable or not (``force`` is write-only)."""
    objects: tuple[LivepatchObject, ...]
    """Its objects, in sysfs name order."""


class PatchOrder(NamedTuple):
    """Where the order of :attr:`Snapshot.livepatches` comes from."""

    source: str
    """``stack_order`` (sysfs, exact), ``proc-modules`` or ``kallsyms`` (module
    load order), ``none`` (no livepatches) or ``unknown`` (sysfs name order,
    not klp_patches)."""
    detail: str
    """One line saying why."""


class LoadedModule(NamedTuple):
    """A loaded module (``/proc/modules`` and ``/sys/module/<m>``)."""

    name: str
    size: int | Unknown
    refcnt: int | Unknown
    """module_refcount() (``/sys/module/<m>/refcnt`` where collected, else /proc/modules)."""
    used_by: tuple[str, ...]
    """Modules that depend on it (/proc/modules' used-by column)."""
    holders: tuple[str, ...] | Unknown
    """``/sys/module/<m>/holders/`` (collected for livepatch modules only)."""
    state: str | Unknown
    """``Live``, ``Loading`` or ``Unloading``."""
    taints: str | Unknown
    """Taint letters, e.g. ``OEK``."""
    livepatch: bool
    """A livepatch module: taint K, modinfo livepatch=Y, or a /sys/kernel/livepatch entry."""


_T = TypeVar("_T")
_Modules: TypeAlias = "tuple[LoadedModule, ...] | Unknown | None"


class Task(NamedTuple):
    """One thread (``/proc/PID/task/TID``)."""

    pid: int
    """Thread group id."""
    tid: int
    """Thread id: what livepatch tracks (task->patch_state is per thread)."""
    comm: str
    """task->comm."""
    kthread: bool | Unknown
    """PF_KTHREAD in /proc/PID/stat's flags."""
    state: str | Unknown
    """Scheduler state letter (R, S, D, I, ...)."""
    patch_state: int | Unknown
    """task->patch_state: -1 KLP_UNDEFINED (no transition), 0 unpatched, 1 patched."""
    stack: tuple[StackFrame, ...] | Unknown
    """Its kernel stack, innermost frame first (root only)."""


class KoFile(NamedTuple):
    """A livepatch module file as found on the host."""

    module: str
    """The module name (``-`` in the file name becomes ``_``)."""
    path: str
    """Host path without the leading ``/``."""
    data: bytes
    """The bytes as found: compressed when the name ends in .xz, .zst or .gz."""

    @property
    def compression(self) -> str | None:
        for ext in ("xz", "zst", "gz"):
            if self.path.endswith(f".ko.{ext}"):
                return ext
        return None

    def decompressed(self) -> bytes:
        """The ELF bytes; zstd needs Python 3.14's compression.zstd."""
        comp = self.compression
        try:
            if comp == "xz":
                return lzma.decompress(self.data)
            if comp == "gz":
                return zlib.decompress(self.data, 31)
        except (lzma.LZMAError, zlib.error) as e:
            raise SnapshotError(f"{self.path}: corrupt {comp} data ({e})") from None
        if comp == "zst":
            try:
                from compression import zstd  # type: ignore[import-not-found]
            except ImportError:
                raise SnapshotError(
                    f"{self.path}: zstd-compressed; decompress it with 'zstd -d' first"
                ) from None
            return bytes(zstd.decompress(self.data))
        return self.data


class Snapshot(NamedTuple):
    """A host's livepatch state as one snapshot tells it."""

    source: str
    """The file or directory read."""
    kind: str
    """``klpsim``, ``sosreport`` or ``supportconfig``."""
    manifest: Manifest | None
    """The MANIFEST (klpsim snapshots only)."""
    release: str | Unknown
    """``uname -r``."""
    ftrace_enabled: bool | Unknown
    """The ``kernel.ftrace_enabled`` sysctl."""
    tainted: int | Unknown
    """``/proc/sys/kernel/tainted``."""
    livepatches: tuple[Livepatch, ...] | Unknown
    """The patches, in klp_patches order as far as :attr:`patch_order` says."""
    patch_order: PatchOrder
    """Where that order comes from."""
    modules: tuple[LoadedModule, ...] | Unknown
    """Loaded modules, newest first when the source keeps the order."""
    kallsyms: SymbolTable | Unknown
    """The symbol table."""
    tasks: tuple[Task, ...] | Unknown
    """Every thread (but see :attr:`partial_tasks`)."""
    partial_tasks: str | None
    """None when :attr:`tasks` holds every thread; otherwise which ones it lacks."""
    kprobes: tuple[KprobeEntry, ...] | Unknown
    """``/sys/kernel/debug/kprobes/list``."""
    ftrace: tuple[FtraceRecord, ...] | Unknown
    """``enabled_functions``: the functions some ftrace user (livepatch included) holds."""
    injectable: tuple[InjectableEntry, ...] | Unknown
    """``fail_function/injectable``."""
    ko_files: tuple[KoFile, ...]
    """The livepatch .ko files the collector found."""
    missing: tuple[str, ...]
    """One line for each thing the snapshot could not tell."""
    notes: tuple[str, ...]
    """Facts derived rather than read, with where they come from."""

    def livepatch(self, name: str) -> Livepatch | None:
        if isinstance(self.livepatches, Unknown):
            return None
        return next((p for p in self.livepatches if p.name == name), None)

    def module(self, name: str) -> LoadedModule | None:
        if isinstance(self.modules, Unknown):
            return None
        return next((m for m in self.modules if m.name == name), None)

    def ko(self, module: str) -> KoFile | None:
        return next((k for k in self.ko_files if k.module == module), None)


# ------------------------------------------------------------------ trees


class Tree:
    """The files of a snapshot by path relative to its top directory.

    ``files`` maps a path to its bytes, or to None for a path known to exist
    whose content the source does not hold (supportconfig's sysfs listing).
    """

    def __init__(self, source: str, files: dict[str, bytes | None], dirs: set[str]):
        self.source = source
        self.files = files
        self.dirs = set(dirs)
        self.children: dict[str, set[str]] = {}
        for path in list(files) + list(dirs):
            parts = path.split("/")
            for i in range(1, len(parts)):
                self.dirs.add("/".join(parts[:i]))
        for path in list(files) + list(self.dirs):
            parent, _, name = path.rpartition("/")
            self.children.setdefault(parent, set()).add(name)

    def read(self, rel: str) -> bytes | None:
        return self.files.get(rel)

    def text(self, rel: str) -> str | None:
        data = self.files.get(rel)
        return None if data is None else data.decode("utf-8", "surrogateescape")

    def has(self, rel: str) -> bool:
        return rel in self.files or rel in self.dirs

    def isdir(self, rel: str) -> bool:
        return rel in self.dirs

    def listdir(self, rel: str) -> list[str]:
        return sorted(self.children.get(rel, ()))


def _tar_wanted(top: str) -> Callable[[str], bool]:
    if top.startswith(("sosreport", "sos-collector")):
        from .foreign import sos_wanted

        return sos_wanted
    if top.startswith("scc_"):
        from .foreign import scc_wanted

        return scc_wanted
    return lambda rel: True


def load_tree(path: Path) -> Tree:
    """Read a directory or a (compressed) tar archive into a :class:`Tree`."""
    if os.path.isdir(path):  # False, not OSError, for a name too long
        return _load_dir(path)
    members = _fast_members(path)
    if members is None:
        return _load_tarfile(path)
    builder = _TreeBuilder(path)
    for name, kind, data in members:
        builder.add(name, kind, functools.partial(bytes, data))
    return builder.tree()


class _TreeBuilder:
    """Members to a :class:`Tree`: the top directory stripped, unwanted ones skipped."""

    def __init__(self, path: Path):
        self.path = path
        self.files: dict[str, bytes | None] = {}
        self.dirs: set[str] = set()
        self.total = 0
        self.wanted: Callable[[str], bool] | None = None
        self.top = ""

    def add(self, name: str, kind: str, data: Callable[[], bytes]) -> None:
        """``kind``: ``dir``, ``file`` or ``other`` (links and devices are skipped)."""
        name = name.removeprefix("./").rstrip("/")
        if not name:
            return
        if self.wanted is None:
            self.top = name.split("/", 1)[0] if (kind == "dir" or "/" in name) else ""
            self.wanted = _tar_wanted(self.top)
        top = self.top
        rel = name[len(top) + 1 :] if top and name.startswith(top + "/") else name
        if (top and name == top) or not rel or not self.wanted(rel):
            return
        if kind == "dir":
            self.dirs.add(rel)
        elif kind == "file":
            content = data()
            self.total += len(content)
            if self.total > _MAX_BYTES:
                raise SnapshotError(f"{self.path}: over 1 GiB of members: not a snapshot")
            self.files[rel] = content

    def tree(self) -> Tree:
        if not self.files and not self.dirs:
            raise SnapshotError(f"{self.path}: an empty archive")
        return Tree(str(self.path), self.files, self.dirs)


_ZERO_BLOCK = bytes(512)


def _fast_members(path: Path) -> list[tuple[str, str, bytes]] | None:
    """A gzip'd or plain ustar/GNU tar, parsed in one pass over memory.

    Reading an 8,000-member snapshot this way takes a tenth of tarfile's time.
    Anything else (xz, bzip2, pax headers, sparse files) returns None and
    goes to :mod:`tarfile`.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise SnapshotError(f"{path}: truncated or corrupt archive ({e})") from None
    if raw[257:262] != b"ustar":
        return None
    out: list[tuple[str, str, bytes]] = []
    pos, n, longname = 0, len(raw), None
    while True:
        if pos + 512 > n:
            raise SnapshotError(f"{path}: truncated or corrupt archive (no end-of-archive)")
        h = raw[pos : pos + 512]
        if h == _ZERO_BLOCK:
            return out
        if h[257:262] != b"ustar" or h[124] & 0x80:
            return None
        try:
            chk = int(h[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            size = int(h[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            raise SnapshotError(f"{path}: corrupt tar header at byte {pos}") from None
        if sum(h[:148]) + 256 + sum(h[156:]) != chk:
            raise SnapshotError(f"{path}: corrupt tar header at byte {pos} (bad checksum)")
        start = pos + 512
        if start + size > n:
            raise SnapshotError(f"{path}: truncated or corrupt archive (member cut short)")
        data = raw[start : start + size]
        pos = start + (size + 511) // 512 * 512
        t = h[156:157]
        if t == b"L":
            longname = data.rstrip(b"\0")
            continue
        name = h[:100].split(b"\0", 1)[0]
        if h[257:263] == b"ustar\0" and h[345] != 0:  # POSIX prefix field
            name = h[345:500].split(b"\0", 1)[0] + b"/" + name
        if longname is not None:
            name, longname = longname, None
        if t in (b"0", b"\0", b"7"):
            kind = "file"
        elif t == b"5":
            kind = "dir"
        elif t in (b"1", b"2", b"3", b"4", b"6"):
            kind = "other"
        else:  # pax headers, GNU sparse or volume records: tarfile knows them
            return None
        out.append((name.decode("utf-8", "surrogateescape"), kind, data))


def _load_tarfile(path: Path) -> Tree:
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the with below
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror or e}") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError):
        raise SnapshotError(
            f"{path}: not a tar archive (plain, gzip, bzip2 or xz), or a truncated one"
        ) from None
    builder = _TreeBuilder(path)

    def content(m: tarfile.TarInfo) -> bytes:
        f = tf.extractfile(m)
        data = f.read() if f is not None else b""
        if len(data) != m.size:
            raise SnapshotError(f"{path}: {m.name}: truncated member")
        return data

    try:
        with tf:
            for m in tf:
                kind = "dir" if m.isdir() else "file" if m.isfile() else "other"
                builder.add(m.name, kind, functools.partial(content, m))
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SnapshotError(f"{path}: truncated or corrupt archive ({why})") from None
    return builder.tree()


def _load_dir(path: Path) -> Tree:
    """An unpacked snapshot (or sosreport/supportconfig) directory."""
    root = path
    if not (path / "MANIFEST").exists() and (path / _TOP / "MANIFEST").exists():
        root = path / _TOP
    try:
        kind_probe = {p.name for p in root.iterdir()}
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror}") from None
    wanted: Callable[..., bool] | None = None
    if "sos_commands" in kind_probe or "sos_reports" in kind_probe:
        from .foreign import sos_wanted

        wanted = sos_wanted
    elif "basic-environment.txt" in kind_probe or "supportconfig.txt" in kind_probe:
        from .foreign import scc_wanted

        wanted = scc_wanted
    elif "MANIFEST" not in kind_probe:
        # Known by its top level alone: never read a whole tree (such as /)
        # to find that it is none of the three.
        raise SnapshotError(f"{path}: {_NOT_A_SNAPSHOT}")
    files: dict[str, bytes | None] = {}
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        reldir = os.path.relpath(dirpath, root)
        reldir = "" if reldir == "." else reldir
        for d in dirnames:
            rel = f"{reldir}/{d}" if reldir else d
            if wanted is None or wanted(rel):
                dirs.add(rel)
        for fn in filenames:
            rel = f"{reldir}/{fn}" if reldir else fn
            if wanted is not None and not wanted(rel):
                continue
            try:
                with open(os.path.join(dirpath, fn), "rb") as f:
                    files[rel] = f.read()
            except OSError as e:
                raise SnapshotError(f"{path}: {rel}: {e.strerror}") from None
        if wanted is not None:
            dirnames[:] = [
                d for d in dirnames if wanted(f"{reldir}/{d}" if reldir else d, prefix=True)
            ]
    return Tree(str(path), files, dirs)


# ------------------------------------------------------------ entry point


def read_snapshot(path: str | Path) -> Snapshot:
    """Read a klpsim snapshot, a sosreport or a supportconfig (archive or directory).

    Raises :class:`SnapshotError` (one line) for what is not one of those, is
    truncated, or holds no livepatch data at all.
    """
    if not str(path):  # Path("") is "."
        raise SnapshotError("'': No such file or directory")
    path = Path(path)
    if not os.path.exists(path):  # False, not OSError, for a name too long
        raise SnapshotError(f"{path}: No such file or directory")
    tree = load_tree(path)
    if "MANIFEST" in tree.files:
        return read_klpsim(tree)
    from .foreign import read_foreign

    snap = read_foreign(tree)
    if snap is None:
        raise SnapshotError(f"{path}: {_NOT_A_SNAPSHOT}")
    return snap


_NOT_A_SNAPSHOT = (
    "not a klpsim snapshot, sosreport or supportconfig "
    "(no MANIFEST, sos_commands/ or basic-environment.txt)"
)


# ------------------------------------------------------------ klpsim format

_STATUSES = ("collected", "absent", "unreadable", "vanished")
_HUMAN = {
    "no-such-file": "not on the host",
    "debugfs-not-mounted": "debugfs was not mounted",
    "tracefs-not-mounted": "tracefs was not mounted",
    "not-root": "unreadable without root",
    "write-only": "write-only",
    "read-failed": "could not be read",
}


def describe(item: ItemStatus) -> str:
    """``proc/kallsyms: unreadable without root`` and the like."""
    if item.status == "vanished":
        return f"/{item.path}: vanished while collecting"
    return f"/{item.path}: {_HUMAN.get(item.reason, item.reason or item.status)}"


def parse_manifest(text: str, source: str) -> Manifest:
    fields: dict[str, str] = {}
    items: list[ItemStatus] = []
    kos: list[tuple[str, str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(": ")
        if not sep:
            raise SnapshotError(f"{source}: MANIFEST:{n}: not 'key: value': {line!r}")
        if key == "item":
            f = value.split()
            if len(f) not in (2, 3) or f[1] not in _STATUSES:
                raise SnapshotError(f"{source}: MANIFEST:{n}: bad item line: {line!r}")
            items.append(ItemStatus(f[0], f[1], f[2] if len(f) == 3 else ""))
        elif key == "ko":
            f = value.split()
            if len(f) != 3:
                raise SnapshotError(f"{source}: MANIFEST:{n}: bad ko line: {line!r}")
            kos.append((f[0], f[1], f[2]))
        else:
            fields[key] = value
    fmt = fields.get("format", "")
    if not fmt.startswith("klpsim-snapshot "):
        raise SnapshotError(f"{source}: MANIFEST is not a klpsim snapshot's (no format line)")
    try:
        version = int(fmt.split()[1])
        uid = int(fields["uid"])
    except (ValueError, KeyError) as e:
        raise SnapshotError(f"{source}: MANIFEST: bad or missing field {e}") from None
    if version != FORMAT:
        raise SnapshotError(f"{source}: snapshot format {version}; this klpsim reads {FORMAT}")
    for key in ("collector", "date", "release", "root", "kallsyms-addresses"):
        if key not in fields:
            raise SnapshotError(f"{source}: MANIFEST: missing '{key}:' line")
    return Manifest(
        version,
        fields.get("klpsim", "unknown"),
        fields["collector"],
        fields["date"],
        fields["release"],
        uid,
        fields["root"] == "yes",
        fields["kallsyms-addresses"],
        fields.get("testing-root"),
        tuple(items),
        tuple(kos),
    )


class _Reader:
    """Shared helpers: read one value, or say why it is unknown."""

    def __init__(self, tree: Tree, manifest: Manifest | None, no_content: str = ""):
        self.tree = tree
        self.manifest = manifest
        self.no_content = no_content
        self.missing: list[str] = []
        self.notes: list[str] = []

    def why(self, rel: str, default: str | None = None) -> Unknown:
        it = self.manifest.item(rel) if self.manifest else None
        if it is not None:
            return Unknown(describe(it))
        if rel in self.tree.files and self.no_content:
            return Unknown(f"/{rel}: {self.no_content}")
        return Unknown(default or f"/{rel}: not in the snapshot")

    def int_value(self, rel: str) -> int | Unknown:
        text = self.tree.text(rel)
        if text is None:
            return self.why(rel)
        try:
            return int(text.strip())
        except ValueError:
            raise SnapshotError(
                f"{self.tree.source}: {rel}: not a number: {text.strip()[:40]!r}"
            ) from None

    def bool_value(self, rel: str) -> bool | Unknown:
        v = self.int_value(rel)
        return v if isinstance(v, Unknown) else v != 0

    def parsed(self, rel: str, parse: Callable[[str], _T], what: str) -> _T | None:
        text = self.tree.text(rel)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as e:
            raise SnapshotError(f"{self.tree.source}: {rel}: {e}") from None

    def note_unknown(self, what: str, value: object) -> None:
        if isinstance(value, Unknown):
            self.missing.append(f"{what}: {value.reason}")


def livepatches_from(tree: Tree, r: _Reader, base: str = "sys/kernel/livepatch") -> list[Livepatch]:
    """The patches of a sysfs copy, each with its attributes and objects."""
    out = []
    for name in tree.listdir(base):
        pdir = f"{base}/{name}"
        if not tree.isdir(pdir):
            continue
        attrs = {a for a in tree.listdir(pdir) if not tree.isdir(f"{pdir}/{a}")}
        if r.manifest:  # write-only or unreadable attributes exist too
            attrs |= {
                it.path.rsplit("/", 1)[1]
                for it in r.manifest.items
                if it.path.startswith(pdir + "/") and it.path.count("/") == pdir.count("/") + 1
            }
        objects = []
        for obj in tree.listdir(pdir):
            odir = f"{pdir}/{obj}"
            if not tree.isdir(odir):
                continue
            funcs = []
            for fn in tree.listdir(odir):
                if not tree.isdir(f"{odir}/{fn}"):
                    continue
                fname, comma, pos = fn.rpartition(",")
                if not comma or not pos.isdigit():
                    raise SnapshotError(f"{tree.source}: {odir}/{fn}: not a '<func>,<sympos>' dir")
                funcs.append(LivepatchFunc(fname, int(pos)))
            patched: bool | Unknown
            if "patched" in tree.listdir(odir) or (
                r.manifest and r.manifest.item(f"{odir}/patched")
            ):
                patched = r.bool_value(f"{odir}/patched")
            else:
                patched = Unknown(f"/{odir}/patched: not on this kernel (before 6.1)")
            objects.append(LivepatchObject(obj, patched, tuple(funcs)))

        def attr(
            a: str,
            conv: Callable[[str], _T | Unknown],
            absent: str,
            pdir: str = pdir,
            attrs: set[str] = attrs,
        ) -> _T | Unknown:
            if a not in attrs:
                return Unknown(f"/{pdir}/{a}: {absent}")
            return conv(f"{pdir}/{a}")

        out.append(
            Livepatch(
                name,
                attr("enabled", r.bool_value, "missing"),
                attr("transition", r.bool_value, "not on this kernel (before 4.12)"),
                attr("replace", r.bool_value, "not on this kernel (6.11+); read it from the .ko"),
                attr("replace_set", r.int_value, "not on this kernel (replace-set series only)"),
                attr("stack_order", r.int_value, "not on this kernel (6.14+)"),
                frozenset(attrs),
                tuple(objects),
            )
        )
    return out


def order_patches(
    patches: list[Livepatch], modules: _Modules, kallsyms: SymbolTable | Unknown | None = None
) -> tuple[tuple[Livepatch, ...], PatchOrder]:
    """Put the patches in klp_patches order, and say how that order is known.

    stack_order (6.14+) is the position in klp_patches.  Without it, module
    load order stands in: a livepatch module calls klp_enable_patch() from
    its init, which adds the patch at the tail of klp_patches, and
    /proc/modules lists modules newest first (list_add_rcu() at the head).
    /proc/kallsyms walks the same list for its module part, so its modules
    give that order too when /proc/modules is missing or unreadable (a
    livepatch of m_show()).
    """
    if not patches:
        return (), PatchOrder("none", "no livepatches")
    orders = [p.stack_order for p in patches]
    if all(isinstance(o, int) for o in orders) and len(set(orders)) == len(orders):
        return tuple(sorted(patches, key=lambda p: p.stack_order)), PatchOrder(
            "stack_order", "sysfs stack_order: the position in klp_patches"
        )
    load_orders: tuple[tuple[str, str, Callable[[], Sequence[str]]], ...] = (
        # newest module first, each read only if the one before lacks a patch
        ("proc-modules", "/proc/modules lists the newest first",
         lambda: [] if modules is None or isinstance(modules, Unknown) else [m.name for m in modules]),
        ("kallsyms", "/proc/kallsyms lists the modules' symbols newest module first",
         lambda: kallsyms.modules() if isinstance(kallsyms, SymbolTable) else []),
    )  # fmt: skip
    for source, why, names in load_orders:
        pos = {m: i for i, m in enumerate(names())}
        if all(p.name in pos for p in patches):
            return tuple(sorted(patches, key=lambda p: -pos[p.name])), PatchOrder(
                source,
                f"module load order ({why}; a livepatch joins klp_patches as its module loads)",
            )
    return tuple(patches), PatchOrder(
        "unknown", "sysfs name order: no stack_order and no module load order in this snapshot"
    )


def settle_livepatches(
    r: _Reader,
    have_sysfs: bool,
    patches: list[Livepatch],
    modules: _Modules,
    kallsyms: SymbolTable | Unknown | None = None,
) -> tuple[tuple[Livepatch, ...], PatchOrder]:
    """The patches in order; without a sysfs copy, none only when no module is a livepatch.

    Every livepatch module carries taint K (TAINT_LIVEPATCH, added when a
    module with modinfo livepatch=Y loads), so a module list without it
    proves there is no patch; anything else is a snapshot without
    livepatch data, and an error.
    """
    if have_sysfs:
        ordered, order = order_patches(patches, modules, kallsyms)
        if order.source == "unknown":
            r.missing.append(f"patch order: {order.detail}")
        return ordered, order
    src = r.tree.source
    it = r.manifest.item("sys/kernel/livepatch") if r.manifest else None
    if it is not None and (it.status, it.reason) == ("absent", "no-such-file"):
        # A kernel without CONFIG_LIVEPATCH: it refuses livepatch modules too
        # (check_modinfo_livepatch()).
        r.notes.append(
            "no livepatches: the host has no /sys/kernel/livepatch (no CONFIG_LIVEPATCH)"
        )
        return (), PatchOrder("none", "no livepatches")
    if modules is None or isinstance(modules, Unknown):
        raise SnapshotError(
            f"{src}: holds no livepatch data (no /sys/kernel/livepatch, no module list)"
        )
    lp = [m.name for m in modules if m.livepatch]
    if lp:
        raise SnapshotError(
            f"{src}: holds no /sys/kernel/livepatch although livepatch modules are loaded "
            f"({', '.join(lp)})"
        )
    r.notes.append("no livepatches: no sysfs copy, and no loaded module is a livepatch (taint K)")
    return (), PatchOrder("none", "no livepatches")


def modules_from(r: _Reader, patches: list[Livepatch]) -> tuple[LoadedModule, ...] | Unknown:
    text = r.tree.text("proc/modules")
    if text is None:
        return r.why("proc/modules")
    try:
        lines = parse_proc_modules(text)
    except ValueError as e:
        # What the host printed: a livepatch may replace m_show() itself.
        return Unknown(f"/proc/modules: {e} (is m_show() patched?)")
    names = {p.name for p in patches}
    out = []
    for m in lines:
        lp = "K" in m.taints or m.name in names
        refcnt: int | Unknown = (
            m.refcnt if m.refcnt is not None else Unknown("no CONFIG_MODULE_UNLOAD")
        )
        sys_ref = r.tree.text(f"sys/module/{m.name}/refcnt")
        if sys_ref is not None and sys_ref.strip().lstrip("-").isdigit():
            refcnt = int(sys_ref)
        hdir = f"sys/module/{m.name}/holders"
        holders: tuple[str, ...] | Unknown
        if r.tree.isdir(hdir):
            holders = tuple(r.tree.listdir(hdir))
        elif lp:
            holders = r.why(hdir)
        else:
            holders = Unknown("collected for livepatch modules only")
        out.append(LoadedModule(m.name, m.size, refcnt, m.used_by, holders, m.state, m.taints, lp))
    return tuple(out)


def _tasks(r: _Reader) -> tuple[Task, ...] | Unknown:
    tree = r.tree
    if not tree.isdir("proc"):
        return Unknown("no /proc/PID/task in the snapshot")
    root = r.manifest.root if r.manifest else True
    tasks = []
    unknown_stacks: dict[str, int] = {}
    for pid in tree.listdir("proc"):
        if not pid.isdigit():
            continue
        for tid in tree.listdir(f"proc/{pid}/task"):
            rel = f"proc/{pid}/task/{tid}"
            if not tid.isdigit() or not tree.isdir(rel):
                continue
            stat = r.parsed(f"{rel}/stat", parse_stat, "stat")
            comm_text = tree.text(f"{rel}/comm")
            if comm_text is not None:
                comm = comm_text[:-1] if comm_text.endswith("\n") else comm_text
            elif stat is not None:
                comm = stat.comm
            else:
                continue
            kthread: bool | Unknown = stat.kthread if stat else r.why(f"{rel}/stat")
            state: str | Unknown = stat.state if stat else r.why(f"{rel}/stat")
            ps = r.int_value(f"{rel}/patch_state")
            frames = r.parsed(f"{rel}/stack", parse_stack, "stack")
            stack: tuple[StackFrame, ...] | Unknown
            if frames is not None:
                stack = frames
            else:
                stack = r.why(
                    f"{rel}/stack", None if root else f"/{rel}/stack: unreadable without root"
                )
                reason = stack.reason.split(": ", 1)[-1]
                unknown_stacks[reason] = unknown_stacks.get(reason, 0) + 1
            tasks.append(Task(int(pid), int(tid), comm, kthread, state, ps, stack))
    for reason, n in sorted(unknown_stacks.items()):
        r.missing.append(f"stacks of {n} of {len(tasks)} tasks: {reason}")
    no_ps = sum(isinstance(t.patch_state, Unknown) for t in tasks)
    if no_ps:
        r.missing.append(f"patch_state of {no_ps} of {len(tasks)} tasks")
    return tuple(tasks)


def _list(
    r: _Reader, rels: list[str], parse: Callable[[str], Iterable[_T]], what: str
) -> tuple[_T, ...] | Unknown:
    for rel in rels:
        items = r.parsed(rel, parse, what)
        if items is not None:
            return tuple(items)
    value = r.why(rels[0])
    for rel in rels[1:]:
        if r.manifest and r.manifest.item(rel):
            value = Unknown(f"{value.reason}; {r.why(rel).reason}")
    r.missing.append(f"{what}: {value.reason}")
    return value


def read_klpsim(tree: Tree) -> Snapshot:
    """A klpsim snapshot (MANIFEST at the top)."""
    manifest = parse_manifest(tree.text("MANIFEST") or "", tree.source)
    for it in manifest.items:
        if it.status == "collected" and not tree.has(it.path):
            raise SnapshotError(
                f"{tree.source}: MANIFEST lists /{it.path} as collected but the snapshot "
                "lacks it (truncated or edited)"
            )
    r = _Reader(tree, manifest)
    release: str | Unknown
    text = tree.text("proc/sys/kernel/osrelease")
    release = text.strip() if text is not None else r.why("proc/sys/kernel/osrelease")
    ftrace_enabled = r.bool_value("proc/sys/kernel/ftrace_enabled")
    tainted = r.int_value("proc/sys/kernel/tainted")
    for what, v in (("release", release), ("ftrace_enabled", ftrace_enabled), ("tainted", tainted)):
        r.note_unknown(what, v)

    have_sysfs = tree.isdir("sys/kernel/livepatch")
    patches = livepatches_from(tree, r) if have_sysfs else []
    modules = modules_from(r, patches)
    r.note_unknown("modules", modules)

    kallsyms: SymbolTable | Unknown
    data = tree.read("proc/kallsyms")
    if data is None:
        kallsyms = r.why("proc/kallsyms")
        r.missing.append(f"kallsyms: {kallsyms.reason}")
    else:
        try:
            kallsyms = SymbolTable(data, f"{tree.source}: proc/kallsyms")
        except KallsymsError as e:
            raise SnapshotError(str(e)) from None
        if not kallsyms.addresses_known:
            r.missing.append(
                "kallsyms addresses: all zero, read without root (names and order kept)"
            )
    livepatches, order = settle_livepatches(r, have_sysfs, patches, modules, kallsyms)

    tasks = _tasks(r)
    kprobes = _list(r, ["sys/kernel/debug/kprobes/list"], parse_kprobes, "kprobes")
    ftrace = _list(
        r,
        ["sys/kernel/tracing/enabled_functions", "sys/kernel/debug/tracing/enabled_functions"],
        parse_enabled_functions,
        "ftrace users (enabled_functions)",
    )
    injectable = _list(
        r, ["sys/kernel/debug/fail_function/injectable"], parse_injectable, "error injection list"
    )
    kos = []
    for module, status, where in manifest.kos:
        if status == "collected":
            data = tree.read(where)
            if data is None:
                raise SnapshotError(
                    f"{tree.source}: MANIFEST lists /{where} but the snapshot lacks it"
                )
            kos.append(KoFile(module, where, data))
        elif not any(k.module == module for k in kos):
            r.missing.append(f".ko of {module}: {status} {where}")
    return Snapshot(
        tree.source,
        "klpsim",
        manifest,
        release,
        ftrace_enabled,
        tainted,
        livepatches,
        order,
        modules,
        kallsyms,
        tasks,
        None,
        kprobes,
        ftrace,
        injectable,
        tuple(kos),
        tuple(r.missing),
        tuple(r.notes),
    )
