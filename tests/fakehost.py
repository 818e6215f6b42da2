"""Fake host trees for the snapshot collectors and readers.

A :class:`FakeHost` writes the files a real host has under ``/proc``,
``/sys`` and ``/lib/modules`` into a temporary directory, in the kernel's
formats; the collectors read it through their testing root
(``klpsim snapshot --root DIR``, ``KLPSIM_ROOT=DIR sh snapshot.sh``).
"""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from klpsim.tools.snapshot import python_collector_text, script_text

PF_KTHREAD = 0x00200000
#: An ELF header and a .modinfo-like tail: enough bytes to be a file worth carrying.
FAKE_KO = b"\x7fELF\x02\x01\x01" + b"\0" * 57 + b"livepatch=Y\0name=lp_a\0" + bytes(range(256))


class FakeHost:
    def __init__(self, root: Path, release: str = "6.12.0-fake"):
        self.root = root
        self.release = release
        self.modules: list[str] = []  # /proc/modules lines, newest first
        root.mkdir(parents=True, exist_ok=True)
        self.write("proc/sys/kernel/osrelease", release + "\n")
        self.write("proc/sys/kernel/hostname", "fakehost\n")
        self.write("proc/sys/kernel/ftrace_enabled", "1\n")
        self.write("proc/sys/kernel/tainted", "45056\n")
        (root / "sys/kernel/livepatch").mkdir(parents=True, exist_ok=True)
        self.mounts()

    def write(self, rel: str, data: str | bytes, mode: int | None = None) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        path.write_bytes(data)
        if mode is not None:
            path.chmod(mode)
        return path

    def mounts(self, debugfs: bool = True, tracefs: bool = True) -> None:
        lines = ["sysfs /sys sysfs rw 0 0", "proc /proc proc rw 0 0"]
        if debugfs:
            lines.append("debugfs /sys/kernel/debug debugfs rw,relatime 0 0")
        if tracefs:
            lines.append("tracefs /sys/kernel/tracing tracefs rw,relatime 0 0")
        self.write("proc/mounts", "\n".join(lines) + "\n")

    def patch(
        self,
        name: str,
        objects: dict[str, list[str]],
        enabled: int = 1,
        transition: int = 0,
        replace: int | None = None,
        stack_order: int | None = None,
        replace_set: int | None = None,
        patched: dict[str, int] | None = None,
    ) -> None:
        """A /sys/kernel/livepatch/<name> directory; ``force`` is a 0200 file."""
        base = f"sys/kernel/livepatch/{name}"
        self.write(f"{base}/enabled", f"{enabled}\n")
        self.write(f"{base}/transition", f"{transition}\n")
        self.write(f"{base}/force", "", mode=0o200)
        for attr, value in (
            ("replace", replace),
            ("stack_order", stack_order),
            ("replace_set", replace_set),
        ):
            if value is not None:
                self.write(f"{base}/{attr}", f"{value}\n")
        for obj, funcs in objects.items():
            self.write(f"{base}/{obj}/patched", f"{(patched or {}).get(obj, 1)}\n")
            for func in funcs:
                (self.root / base / obj / func).mkdir(parents=True, exist_ok=True)

    def module(
        self,
        name: str,
        refcnt: int = 0,
        used_by: tuple[str, ...] = (),
        taints: str = "",
        holders: tuple[str, ...] = (),
        state: str = "Live",
    ) -> None:
        """Load a module: it goes to the top of /proc/modules, as the kernel lists it."""
        deps = "".join(f"{u}," for u in used_by) or "-"
        line = f"{name} 16384 {refcnt} {deps} {state} 0xffffffffc0{len(self.modules):06x}"
        if taints:
            line += f" ({taints})"
        self.modules.insert(0, line)
        self.write("proc/modules", "".join(ln + "\n" for ln in self.modules))
        self.write(f"sys/module/{name}/refcnt", f"{refcnt}\n")
        (self.root / f"sys/module/{name}/holders").mkdir(parents=True, exist_ok=True)
        for h in holders:
            (self.root / f"sys/module/{name}/holders/{h}").symlink_to(f"../../{h}")

    def task(
        self,
        pid: int,
        tid: int,
        comm: str,
        state: str = "S",
        kthread: bool = False,
        stack: list[str] | None = None,
        patch_state: int | None = -1,
    ) -> None:
        base = f"proc/{pid}/task/{tid}"
        flags = 0x400100 | (PF_KTHREAD if kthread else 0)
        self.write(f"{base}/comm", comm + "\n")
        self.write(f"{base}/stat", f"{tid} ({comm}) {state} 2 0 0 0 -1 {flags} 0 0 0 0 7 3\n")
        if stack is not None:
            self.write(f"{base}/stack", "".join(f"[<0>] {f}\n" for f in stack), mode=0o400)
        if patch_state is not None:
            self.write(f"{base}/patch_state", f"{patch_state}\n")

    def vanished_process(self, pid: int) -> None:
        """A /proc entry that is gone when the collector looks inside it."""
        (self.root / "proc").mkdir(parents=True, exist_ok=True)
        os.symlink("/nonexistent-klpsim-test", self.root / f"proc/{pid}")

    def vanished_thread(self, pid: int, tid: int) -> None:
        (self.root / f"proc/{pid}/task").mkdir(parents=True, exist_ok=True)
        os.symlink("/nonexistent-klpsim-test", self.root / f"proc/{pid}/task/{tid}")

    def kallsyms(self, lines: list[str], zero: bool = False) -> None:
        if zero:
            lines = ["0000000000000000" + ln[16:] for ln in lines]
        self.write("proc/kallsyms", "".join(ln + "\n" for ln in lines))


def standard_host(root: Path, zero_addresses: bool = False) -> FakeHost:
    """Two patches stacked, one replaced patch left loaded, tricky tasks, the debugfs lists."""
    h = FakeHost(root)
    h.module("ext4", refcnt=1, used_by=("jbd2",))
    h.module("lp_old", refcnt=0, taints="OEK")  # replaced: still loaded, gone from sysfs
    h.module("lp_a", refcnt=1, taints="OEK")
    h.module("nfs", refcnt=2)
    h.module("lp_b", refcnt=1, taints="OEK", holders=("lp_c",))
    h.module("lp_c", refcnt=0, taints="OEK")
    h.patch(
        "lp_a",
        {"vmlinux": ["cmdline_proc_show,1", "version_proc_show,2"], "nfs": ["nfs_permission,1"]},
        replace=1,
    )
    h.patch(
        "lp_b",
        {"vmlinux": ["cmdline_proc_show,1"], "xfs": ["xfs_foo,1"]},
        replace=0,
        patched={"xfs": 0},
    )
    h.patch("lp_c", {"vmlinux": ["meminfo_proc_show,1"]}, replace=0, transition=1)
    h.task(1, 1, "systemd", stack=["ep_poll+0x2a1/0x2f0", "do_epoll_wait+0x9f/0xc0"], patch_state=1)
    h.task(2, 2, "kthreadd", kthread=True, stack=["kthreadd+0x1b8/0x1f0"], patch_state=1)
    h.task(
        42,
        42,
        "a b) (c",  # comm holds spaces and parentheses
        stack=["cmdline_proc_show+0x10/0x40", "seq_read_iter+0x11a/0x4b0"],
        patch_state=0,
    )
    h.task(42, 43, "worker:\\x", state="D", stack=[], patch_state=0)  # running: empty stack
    h.task(
        77,
        77,
        "kworker/0:1+events",
        kthread=True,
        state="I",
        stack=["xfs_foo+0x5/0x80 [xfs]", "0xffffffffc0a01234"],
        patch_state=1,
    )
    h.task(78, 78, "nl\ncomm", stack=["do_nanosleep+0x6b/0x190"], patch_state=1)
    h.vanished_process(90)
    h.vanished_thread(42, 44)
    h.kallsyms(
        [
            # x86-64 starts with the per-CPU symbols: offsets, 0 even as root.
            "0000000000000000 A fixed_percpu_data",
            "0000000000000000 A __per_cpu_start",
            "0000000000001000 D cpu_debug_store",
            "ffffffff81000000 T _text",
            "ffffffff81234560 t cmdline_proc_show",
            "ffffffff81234600 t version_proc_show",
            "ffffffff81334600 t version_proc_show",
            "ffffffff81434600 T meminfo_proc_show",
            "ffffffffc0a00000 t xfs_foo\t[xfs]",
            "ffffffffc0b00000 T nfs_permission\t[nfs]",
            "ffffffffc0c00000 t livepatch_cmdline_proc_show\t[lp_a]",
            "ffffffffc0c00100 t version_proc_show\t[lp_a]",
            "ffffffffc0d00000 t ftrace_trampoline\t[__builtin__ftrace]",
        ],
        zero=zero_addresses,
    )
    h.write(
        "sys/kernel/debug/kprobes/list",
        "ffffffff81234560  k  cmdline_proc_show+0x0    [FTRACE]\n"
        "ffffffffc0a00000  r  xfs_foo+0x0  xfs [DISABLED][FTRACE]\n"
        "ffffffff81434610  k  meminfo_proc_show+0x10    \n",
    )
    h.write(
        "sys/kernel/tracing/enabled_functions",
        "cmdline_proc_show (2) R I   M \ttramp: 0xffffffffc0300000 (klp_ftrace_handler+0x0/0x1e0)"
        " ->klp_ftrace_handler+0x0/0x1e0\n"
        "meminfo_proc_show (1) R I   M \ttramp: 0xffffffffc0301000 (klp_ftrace_handler+0x0/0x1e0)"
        " ->klp_ftrace_handler+0x0/0x1e0\n"
        "xfs_foo [xfs] (1) R   D   M \n\tdirect-->bpf_trampoline_6442+0x0/0x100\n",
    )
    h.write("sys/kernel/debug/error_injection/list", "should_failslab\tERRNO\n")
    (root / "sys/kernel/debug/fail_function").mkdir(parents=True)
    os.symlink("../error_injection/list", root / "sys/kernel/debug/fail_function/injectable")
    h.write(f"lib/modules/{h.release}/updates/lp-a.ko.xz", lzma.compress(FAKE_KO))
    h.write(f"lib/modules/{h.release}/updates/lp_b.ko", FAKE_KO)
    h.write(f"lib/modules/{h.release}/kernel/fs/ext4.ko.zst", b"(\xb5/\xfd not really")
    (root / f"lib/modules/{h.release}/build").symlink_to("/nonexistent-headers")
    return h


# ------------------------------------------------------------- collectors


def run_python(root: Path, out: Path, *extra: str, python: str | None = None, **kw):
    """The Python collector as its own process (stand-alone file, like on a host)."""
    script = out.parent / "collector.py"
    if not script.exists():
        script.write_text(python_collector_text())
        script.chmod(0o644)
    cmd = [python or sys.executable, str(script), "--root", str(root), "-o", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def run_sh(shell: list[str], root: Path, out: Path, *extra: str, env=None, **kw):
    script = out.parent / "klpsim-snapshot.sh"
    if not script.exists():
        script.write_text(script_text())
        script.chmod(0o644)
    environ = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "KLPSIM_ROOT": str(root)}
    environ.update(env or {})
    cmd = [*shell, str(script), "-o", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=environ, **kw)


def shells() -> dict[str, list[str]]:
    """dash (/bin/sh here) and busybox ash; a missing one fails the test loudly."""
    found = {"sh": shutil.which("dash") or shutil.which("sh"), "busybox": shutil.which("busybox")}
    missing = [k for k, v in found.items() if v is None]
    assert not missing, f"needed to test the sh collector: {missing} (apt-get install dash busybox)"
    return {"dash": [found["sh"]], "busybox-ash": [found["busybox"], "ash"]}


def members(path: Path) -> list[tuple]:
    """(name, type, mode, uid, gid, uname, gname, data) of each member; MANIFEST
    without its collector and date lines."""
    out = []
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            data = tf.extractfile(m).read() if m.isfile() else b""
            if m.name.endswith("/MANIFEST"):
                data = b"".join(
                    ln
                    for ln in data.splitlines(keepends=True)
                    if not ln.startswith((b"collector: ", b"date: "))
                )
            out.append((m.name, m.type, m.mode, m.uid, m.gid, m.uname, m.gname, data))
    return out
