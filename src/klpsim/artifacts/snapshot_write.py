"""Host snapshots written from the model: the archive ``klpsim snapshot``
writes, for the host a booted model stands for.

:func:`write_snapshot` is the inverse of booting into a snapshot
(hostboot.py): it writes what the collector (real/collector.py) would read
on a host in the model's state, in the same layout and MANIFEST, so
:func:`~klpsim.artifacts.snapshot.read_snapshot` takes it like any other.
The files come from the model's own sysfs and procfs where it has them
(``/sys/kernel/livepatch``, ``/proc/kallsyms``, ``/proc/PID/stack``, the
tracefs lists); ``/proc/modules``, ``/proc/PID/stat`` and
``/sys/module/M/refcnt`` are printed here in the kernel's formats
(m_show(), do_task_stat(), show_refcnt()), since the model does not hold
them as files. The livepatches' ``.ko`` files are not written: the model's
patches have none, so a reader rebuilds them from sysfs (no states).
Synthetic fleets for ``klpsim plan --fleet`` are made this way.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from .snapshot import FORMAT

if TYPE_CHECKING:
    from klpsim.model.system import System

__all__ = ["snapshot_members", "write_snapshot"]

_TOP = "klpsim-snapshot"
#: include/linux/sched.h
PF_KTHREAD = 0x00200000
#: include/linux/panic.h: TAINT_LIVEPATCH
TAINT_LIVEPATCH = 1 << 15


def snapshot_members(system: System, date: str = "2026-01-01T00:00:00Z") -> dict[str, bytes]:
    """{member path under klpsim-snapshot/: bytes} of a snapshot of *system*,
    MANIFEST included (directories are implied by the paths)."""
    kernel = system.kernel
    fs = kernel.fs
    files: dict[str, bytes] = {}
    items: list[str] = []

    def put(rel: str, text: str) -> None:
        files[rel] = text.encode("utf-8", "surrogateescape")
        items.append(f"item: {rel} collected")

    def copy(rel: str) -> None:
        text = fs.read("/" + rel)
        if isinstance(text, str):
            put(rel, text)
        else:
            items.append(f"item: {rel} absent no-such-file")

    mods = list(kernel.modules.modules.values())
    klp_mods = [m.name for m in mods if m.klp]
    put("proc/sys/kernel/osrelease", kernel.config.release + "\n")
    put("proc/sys/kernel/ftrace_enabled", "1\n")
    put("proc/sys/kernel/tainted", f"{TAINT_LIVEPATCH if klp_mods else 0}\n")
    # m_show(): newest module first; a livepatch is tainted K.
    put(
        "proc/modules",
        "".join(
            f"{m.name} 16384 {m.refcnt} - Live 0x0 ({'OEK' if m.klp else 'OE'})\n"
            for m in reversed(mods)
        ),
    )
    items.append("item: sys/kernel/livepatch collected")

    def walk(path: str) -> None:
        names = fs.listdir(path)
        if isinstance(names, int):
            return
        for name in names:
            p = f"{path}/{name}"
            if isinstance(fs.listdir(p), list):
                files.setdefault(p[1:] + "/", b"")
                walk(p)
                continue
            text = fs.read(p)
            if isinstance(text, str):
                files[p[1:]] = text.encode()
            else:  # the collector notes a file it could not read (force is write-only)
                items.append(f"item: {p[1:]} unreadable write-only")

    files["sys/kernel/livepatch/"] = b""
    walk("/sys/kernel/livepatch")
    for task in kernel.sched.tasks.values():
        rel = f"proc/{task.pid}/task/{task.pid}"
        flags = PF_KTHREAD if task.is_kthread else 0x400100
        state = "R" if task.on_cpu else ("I" if task.is_idle else "S")
        files[f"{rel}/comm"] = f"{task.comm}\n".encode()
        files[f"{rel}/stat"] = (
            f"{task.pid} ({task.comm}) {state} 1 1 1 0 -1 {flags} 0 0 0\n".encode()
        )
        files[f"{rel}/patch_state"] = f"{task.patch_state}\n".encode()
        # proc_pid_stack(): innermost frame first, %pB with the module name
        files[f"{rel}/stack"] = "".join(
            f"[<0>] {s.name}+0x0/0x{s.size:x}"
            + ("" if s.owner is kernel.vmlinux else f" [{s.owner.name}]")
            + "\n"
            for s in reversed(task.stack)
        ).encode()
    for m in klp_mods:
        mod = kernel.modules.modules[m]
        put(f"sys/module/{m}/refcnt", f"{mod.refcnt}\n")
        files[f"sys/module/{m}/holders/"] = b""
        items.append(f"item: sys/module/{m}/holders collected")
    copy("sys/kernel/debug/kprobes/list")
    copy("sys/kernel/tracing/enabled_functions")
    copy("sys/kernel/debug/fail_function/injectable")
    put("proc/kallsyms", str(fs.read("/proc/kallsyms")))
    kos = [f"ko: {m} absent not-written-by-the-model" for m in klp_mods]
    manifest = [
        f"format: klpsim-snapshot {FORMAT}",
        "klpsim: model",
        "collector: model",
        f"date: {date}",
        f"release: {kernel.config.release}",
        "uid: 0",
        "root: yes",
        "kallsyms-addresses: real",
    ]
    files["MANIFEST"] = ("\n".join(manifest + items + kos) + "\n").encode()
    return files


def write_snapshot(system: System, path: str | Path, compresslevel: int = 1) -> Path:
    """Write a snapshot of *system* to *path* (``.tar.gz``); returns *path*."""
    path = Path(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=compresslevel) as tar:
        dirs: set[str] = set()

        def add_dir(rel: str) -> None:
            if rel in dirs:
                return
            parent = rel.rpartition("/")[0]
            if parent:
                add_dir(parent)
            dirs.add(rel)
            info = tarfile.TarInfo(f"{_TOP}/{rel}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)

        for rel, data in snapshot_members(system).items():
            if rel.endswith("/"):
                add_dir(rel[:-1])
                continue
            if "/" in rel:
                add_dir(rel.rpartition("/")[0])
            info = tarfile.TarInfo(f"{_TOP}/{rel}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path
