"""The host collector behind ``klpsim snapshot``: read-only, Python stdlib only.

It reads what a livepatch planner needs from the host it runs on (procfs,
sysfs, debugfs and the livepatch ``.ko`` files) and writes one gzip'd tar,
laid out as docs/snapshot.md describes.  It writes nothing else anywhere: the
archive is written under a temporary name next to the output file and
renamed when complete.

data/snapshot.sh is the same collector in POSIX sh, for hosts without
Python.  The two must produce the same archive: the same members in the same
order with the same bytes, and the same MANIFEST apart from its
``collector`` and ``date`` lines.  That is why the tar stream is written here
by hand (ustar headers, GNU long names) rather than with :mod:`tarfile`, and
why every decision below (which file is read, what a failure is called) is
one the shell can make the same way.

This file imports nothing from klpsim, so it can be copied alone to a host
(or a VM guest) and run as ``python3 collector.py``.  It keeps to Python 3.6
(RHEL 8's platform-python): no ``from __future__ import annotations``, and
annotations newer than that are quoted.
"""

import os
import re
import sys
import time
import zlib

__all__ = ["FORMAT", "TOP", "Collector", "TarStream", "collect", "main"]

#: Version of the archive layout (MANIFEST line ``format: klpsim-snapshot 1``).
FORMAT = 1
#: The one top directory of every member.
TOP = "klpsim-snapshot"

# Replaced by tools/snapshot.py when this file is copied out of the package.
_FALLBACK_VERSION = "unknown"

_KO_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
_TASK_FILES = ("comm", "stat", "stack", "patch_state")
_DIGITS = "0123456789"
_NEVER_EMPTY = ("comm", "stat", "patch_state")
_NONZERO_LINE = re.compile(rb"(?:^|\n)[^0\n]")


def klpsim_version() -> str:
    try:
        from importlib.metadata import version

        return version("klpsim")
    except Exception:
        return _FALLBACK_VERSION


# ------------------------------------------------------------------ tar


def _field(value: int, width: int) -> bytes:
    """An octal number field: ``width - 1`` zero-padded digits and a NUL."""
    return b"%0*o\0" % (width - 1, value)


class TarStream:
    """A minimal tar writer: ustar headers, GNU ``L`` records for long names.

    Every member has uid/gid 0, empty user and group names and the same
    mtime; files are mode 0644, directories 0755.  data/snapshot.sh writes
    byte-identical headers.
    """

    def __init__(self, out, mtime: int):
        self.out = out
        self.mtime = mtime

    def _header(self, name: bytes, size: int, typeflag: bytes, mode: int) -> bytes:
        hdr = (
            name[:100].ljust(100, b"\0")
            + _field(mode, 8)
            + _field(0, 8)
            + _field(0, 8)
            + _field(size, 12)
            + _field(self.mtime, 12)
            + b" " * 8
            + typeflag
            + b"\0" * 100
            + b"ustar\x0000"
            + b"\0" * 64
            + _field(0, 8)
            + _field(0, 8)
            + b"\0" * 167
        )
        chksum = b"%06o\0 " % sum(hdr)
        return hdr[:148] + chksum + hdr[156:]

    def _write(self, name: str, data: bytes, typeflag: bytes, mode: int) -> None:
        raw = name.encode("utf-8", "surrogateescape")
        if len(raw) > 100:
            long = raw + b"\0"
            self.out.write(self._header(b"././@LongLink", len(long), b"L", 0o644))
            self.out.write(long + b"\0" * (-len(long) % 512))
        self.out.write(self._header(raw, len(data), typeflag, mode))
        if data:
            self.out.write(data + b"\0" * (-len(data) % 512))

    def file(self, rel: str, data: bytes) -> None:
        self._write(f"{TOP}/{rel}", data, b"0", 0o644)

    def dir(self, rel: str) -> None:
        self._write(f"{TOP}/{rel}/" if rel else f"{TOP}/", b"", b"5", 0o755)

    def close(self) -> None:
        self.out.write(b"\0" * 1024)


class _Gzip:
    """A binary sink that gzip-compresses into ``f`` (zlib only: no gzip module)."""

    def __init__(self, f):
        self.f = f
        self.z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        self.f.write(self.z.compress(data))

    def close(self) -> None:
        self.f.write(self.z.flush())


# ------------------------------------------------------------- collecting


def _ls(path: str) -> "list[str] | None":
    """Sorted entries of a directory (no dot files), None when it is gone."""
    try:
        names = os.listdir(path)
    except OSError:
        return None
    return sorted(n for n in names if not n.startswith("."))


def _module_name(filename: str) -> "str | None":
    """``foo-bar.ko.xz`` -> ``foo_bar`` (the kernel's name for the module)."""
    for suffix in _KO_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)].replace("-", "_")
    return None


class Collector:
    """One collection run; ``root`` prefixes every host path (tests only)."""

    def __init__(self, tar: TarStream, root: str = "", ko_dir: "str | None" = None):
        self.tar = tar
        self.root = root
        self.ko_dir = ko_dir
        self.uid = os.getuid()
        self.items: list[str] = []
        self.kos: list[str] = []
        self.mounts: set[tuple[str, str]] = set()

    # -- reading ---------------------------------------------------------

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def read(self, rel: str) -> "bytes | None":
        try:
            with open(self.path(rel), "rb") as f:
                return f.read()
        except OSError:
            return None

    def why(self, rel: str, gone: str = "absent no-such-file") -> str:
        """The status of a path that could not be read (shell-decidable)."""
        p = self.path(rel)
        if not os.path.exists(p):
            if gone.startswith("absent") and rel.startswith("sys/kernel/"):
                return self.why_missing(rel)
            return gone
        try:
            mode = os.stat(p).st_mode
        except OSError:
            return "vanished"
        if not mode & 0o444:
            return "unreadable write-only"
        if self.uid != 0:
            return "unreadable not-root"
        return "unreadable read-failed"

    def why_missing(self, rel: str) -> str:
        debug, tracing = rel.startswith("sys/kernel/debug/"), rel.startswith("sys/kernel/tracing/")
        if debug and ("/sys/kernel/debug", "debugfs") not in self.mounts:
            return "absent debugfs-not-mounted"
        if tracing and ("/sys/kernel/tracing", "tracefs") not in self.mounts:
            return "absent tracefs-not-mounted"
        if self.uid != 0 and rel.startswith("sys/kernel/debug/"):
            return "unreadable not-root"
        return "absent no-such-file"

    def item(self, rel: str, status: str) -> None:
        self.items.append(f"item: {rel} {status}")

    def want(self, rel: str) -> "bytes | None":
        """Read a wanted file: archive it and note its status either way."""
        data = self.read(rel)
        if data is None:
            self.item(rel, self.why(rel))
            return None
        self.tar.file(rel, data)
        self.item(rel, "collected")
        return data

    # -- the parts -------------------------------------------------------

    def run(self) -> str:
        """Collect everything; returns the MANIFEST text."""
        when = time.gmtime(self.tar.mtime)
        data = self.read("proc/mounts") or b""
        for line in data.decode("utf-8", "replace").splitlines():
            f = line.split()
            if len(f) >= 3:
                self.mounts.add((f[1], f[2]))
        self.tar.dir("")
        osrelease = self.want("proc/sys/kernel/osrelease")
        release = osrelease.decode("utf-8", "replace").strip() if osrelease else ""
        self.want("proc/sys/kernel/ftrace_enabled")
        self.want("proc/sys/kernel/tainted")
        modules = self.want("proc/modules")
        patches = self.livepatch()
        self.tasks()
        # Patch modules in sysfs order, then loaded modules tainted K that are
        # no longer in sysfs (replaced patches stay loaded).
        lp_modules = list(patches)
        lp_modules += [m for m in _tainted_livepatch(modules) if m not in lp_modules]
        for m in lp_modules:
            self.want(f"sys/module/{m}/refcnt")
            self.holders(m)
        self.want("sys/kernel/debug/kprobes/list")
        if self.want("sys/kernel/tracing/enabled_functions") is None:
            self.want("sys/kernel/debug/tracing/enabled_functions")
        self.want("sys/kernel/debug/fail_function/injectable")
        kallsyms = self.want("proc/kallsyms")
        self.ko_files(lp_modules, release)

        addresses = "none"
        if kallsyms:
            # Real when some address does not start with 0: as root the
            # per-CPU symbols at the top still read 0 (they are offsets).
            addresses = "real" if _NONZERO_LINE.search(kallsyms) else "zero"
        lines = [
            f"format: klpsim-snapshot {FORMAT}",
            f"klpsim: {klpsim_version()}",
            "collector: python",
            f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', when)}",
            f"release: {release or 'unknown'}",
            f"uid: {self.uid}",
            f"root: {'yes' if self.uid == 0 else 'no'}",
            f"kallsyms-addresses: {addresses}",
        ]
        if self.root:
            lines.append(f"testing-root: {self.root}")
        return "\n".join(lines + self.items + self.kos) + "\n"

    def livepatch(self) -> "list[str]":
        """/sys/kernel/livepatch/**: every directory and readable attribute."""
        rel = "sys/kernel/livepatch"
        if not os.path.isdir(self.path(rel)):
            self.item(rel, self.why(rel))
            return []
        self.item(rel, "collected")
        self.walk(rel)
        return _ls(self.path(rel)) or []

    def walk(self, rel: str) -> None:
        self.tar.dir(rel)
        names = _ls(self.path(rel))
        if names is None:
            self.item(rel, "vanished")
            return
        for name in names:
            sub = f"{rel}/{name}"
            if os.path.isdir(self.path(sub)):
                self.walk(sub)
                continue
            data = self.read(sub)
            if data is None:
                self.item(sub, self.why(sub, gone="vanished"))
            else:
                self.tar.file(sub, data)

    def holders(self, module: str) -> None:
        rel = f"sys/module/{module}/holders"
        if not os.path.isdir(self.path(rel)):
            self.item(rel, self.why(rel))
            return
        self.tar.dir(rel)
        for name in _ls(self.path(rel)) or []:
            self.tar.file(f"{rel}/{name}", b"")
        self.item(rel, "collected")

    def tasks(self) -> None:
        """Every /proc/PID/task/TID: comm, stat, stack and patch_state."""
        for pid in _ls(self.path("proc")) or []:
            if pid[:1] not in _DIGITS:
                continue
            tids = _ls(self.path(f"proc/{pid}/task"))
            if not tids:
                if not os.path.isdir(self.path(f"proc/{pid}/task")):
                    self.item(f"proc/{pid}", "vanished")
                continue
            for tid in tids:
                if tid[:1] in _DIGITS:
                    self.task(f"proc/{pid}/task/{tid}")

    def task(self, rel: str) -> None:
        got = {name: self.read(f"{rel}/{name}") for name in _TASK_FILES}
        for name in _NEVER_EMPTY:
            if got[name] == b"":  # the kernel prints at least a newline: a failed read
                got[name] = None
        if (got["comm"] is None or got["stat"] is None) and not os.path.isdir(self.path(rel)):
            self.item(rel, "vanished")
            return
        for name in _TASK_FILES:
            data = got[name]
            if data is None:
                self.item(f"{rel}/{name}", self.why(f"{rel}/{name}"))
            else:
                self.tar.file(f"{rel}/{name}", data)

    def ko_files(self, modules: "list[str]", release: str) -> None:
        """The .ko files of the livepatch modules, stored as found (maybe compressed)."""
        if not modules:
            return
        if self.ko_dir is not None:
            top = os.path.realpath(self.ko_dir)
            base = top.lstrip("/")
        else:
            base = f"lib/modules/{release}"
            top = self.path(base)
        found: dict[str, list[str]] = {m: [] for m in modules}
        for rel in _walk_files(top, base):
            mod = _module_name(rel.rsplit("/", 1)[-1])
            if mod in found:
                data = _read_file(top + rel[len(base) :])
                if data is None:
                    found[mod].append(f"unreadable {rel}")
                    continue
                self.tar.file(rel, data)
                found[mod].append(f"collected {rel}")
        for m in modules:
            self.kos += [f"ko: {m} {what}" for what in found[m]] or [f"ko: {m} absent not-found"]


def _read_file(path: str) -> "bytes | None":
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _walk_files(top: str, base: str):
    """Regular files under ``top`` (named ``base/...``), sorted, not following links."""
    names = _ls(top)
    for name in names or []:
        path = f"{top}/{name}"
        if os.path.isdir(path) and not os.path.islink(path):
            yield from _walk_files(path, f"{base}/{name}")
        elif os.path.isfile(path):
            yield f"{base}/{name}"


def _tainted_livepatch(modules: "bytes | None") -> "list[str]":
    """Modules of /proc/modules with taint flag K (TAINT_LIVEPATCH)."""
    out = []
    for line in (modules or b"").decode("utf-8", "replace").splitlines():
        f = line.split()
        if len(f) >= 7 and f[6].startswith("(") and "K" in f[6]:
            out.append(f[0])
    return out


# ------------------------------------------------------------------ entry


def collect(out_path: str, root: str = "", ko_dir: "str | None" = None, force: bool = False) -> str:
    """Write a snapshot of this host (or of ``root``, for tests) to ``out_path``.

    ``-`` writes to stdout.  Returns the path written.  Raises OSError, or
    FileExistsError when ``out_path`` exists and ``force`` is false.
    """
    mtime = int(time.time())
    if out_path == "-":
        sink = sys.stdout.buffer
        gz = _Gzip(sink)
        _collect_into(gz, mtime, root, ko_dir)
        sink.flush()
        return out_path
    if os.path.lexists(out_path) and not force:
        raise FileExistsError(out_path)
    directory, base = os.path.split(out_path)
    tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}")
    try:
        with open(tmp, "xb") as f:
            _collect_into(_Gzip(f), mtime, root, ko_dir)
        if force:
            os.replace(tmp, out_path)
        else:
            try:
                os.link(tmp, out_path)  # fails if out_path appeared meanwhile
            except FileExistsError:
                raise
            except OSError:
                os.rename(tmp, out_path)  # a file system without hard links
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return out_path


def _collect_into(gz: _Gzip, mtime: int, root: str, ko_dir: "str | None") -> None:
    tar = TarStream(gz, mtime)
    manifest = Collector(tar, root.rstrip("/"), ko_dir).run()
    tar.file("MANIFEST", manifest.encode())
    tar.close()
    gz.close()


def default_name(root: str = "") -> str:
    """``klpsim-snapshot-<host>-<UTC date>.tar.gz`` in the current directory."""
    try:
        with open(f"{root}/proc/sys/kernel/hostname", "rb") as f:
            host = f.read().decode("utf-8", "replace").strip() or "host"
    except OSError:
        host = "host"
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
    return f"klpsim-snapshot-{host}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.tar.gz"


def main(argv: "list[str] | None" = None) -> int:
    """``python3 collector.py [-o FILE|-] [--ko DIR] [--force]`` (stand-alone use)."""
    import argparse

    p = argparse.ArgumentParser(prog="collector.py", description=__doc__.splitlines()[0])
    p.add_argument("-o", dest="out", metavar="FILE")
    p.add_argument("--ko", metavar="DIR")
    p.add_argument("--force", action="store_true")
    p.add_argument("--root", default=os.environ.get("KLPSIM_ROOT", ""), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    return run_cli(args.out, args.ko, args.force, args.root, "collector.py")


def run_cli(out: "str | None", ko: "str | None", force: bool, root: str, prog: str) -> int:
    """Collect with one-line errors and exit status 2 on bad input."""
    if ko is not None and not os.path.isdir(ko):
        print(f"{prog}: --ko {ko}: not a directory", file=sys.stderr)
        return 2
    if root and not os.path.isdir(root):
        print(f"{prog}: testing root {root}: not a directory", file=sys.stderr)
        return 2
    out = out or default_name(root)
    try:
        written = collect(out, root, ko, force)
    except FileExistsError:
        print(f"{prog}: {out}: exists (use --force to overwrite)", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{prog}: {e.filename or out}: {e.strerror}", file=sys.stderr)
        return 2
    if written != "-":
        print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
