"""The guest's initramfs: busybox, the host's bash and GNU tools, the modules.

The kernel's selftest scripts need bash and GNU tools that busybox lacks or
only partly has (``comm --nocheck-order``, ``sysctl --values``, ``diff -upr
--label``, ``mktemp --tmpdir``, ``/bin/stat --format``, ``date --rfc-3339=ns``,
kmod's ``modprobe``/``modinfo``), so those are copied from the host together
with the shared libraries ``ldd`` reports.  Busybox fills in everything else.

Layout inside the guest::

    /init                      mounts, then runs /klp/agent.sh
    /klp/agent.sh              the command loop on /dev/ttyS1 (see vm.py)
    /klp/functions.sh          the kernel's own, from linux-source
    /klp/klpsim.sh             the project's verbs the kernel's copy lacks
    /klp/mods/*.ko             every module (test modules and generated ones)
    /klp/work/test_modules ->  /klp/mods   (cwd of scenario scripts)
    /lib/modules/<kver>/extra  the same modules, for 6.1's modprobe
    /selftests/livepatch       the kernel's selftests (test_modules/ on 6.9+)

The archive is an uncompressed newc cpio written here, so neither cpio(1) nor
gzip is needed and the kernel unpacks it quickly under TCG.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from importlib import resources
from pathlib import Path

from .debian import KernelTree
from .errors import VMError

__all__ = ["build_initramfs", "HOST_TOOLS"]

#: Host programs copied into /usr/bin (or /usr/sbin), with their libraries.
HOST_TOOLS = [
    "bash",
    "kmod",
    "dmesg",
    "comm",
    "mktemp",
    "stat",
    "id",
    "cat",
    "sleep",
    "rm",
    "dirname",
    "basename",
    "tr",
    "cut",
    "head",
    "tail",
    "sort",
    "uniq",
    "wc",
    "ls",
    "env",
    "grep",
    "sed",
    "mawk",
    "diff",
    "find",
    "xargs",
    "date",
    "uname",
    "seq",
    "getconf",
    "timeout",
    "sysctl",
    "nproc",
]

_KMOD_LINKS = ("modprobe", "modinfo", "insmod", "rmmod", "lsmod", "depmod")


def _data(name: str) -> str:
    return resources.files("klpsim.real.vm").joinpath("data", name).read_text()


class _Cpio:
    """A minimal newc (``070701``) archive writer."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.ino = 1
        self.seen: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        name = name.lstrip("/") or "."
        if name in self.seen:
            return
        self.seen.add(name)
        nb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        hdr = b"070701" + b"".join(b"%08x" % v for v in fields)
        self.ino += 1
        self.f.write(hdr + nb + b"\0" * ((4 - (len(hdr) + len(nb)) % 4) % 4))
        self.f.write(data + b"\0" * ((4 - len(data) % 4) % 4))

    def dir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFREG | mode, data)

    def copy(self, name: str, src: Path, mode: int | None = None) -> None:
        m = mode if mode is not None else (0o755 if os.access(src, os.X_OK) else 0o644)
        self.file(name, Path(src).read_bytes(), m)

    def symlink(self, name: str, target: str) -> None:
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)
        self.f.close()


def _libs(binaries: list[Path]) -> set[str]:
    out: set[str] = set()
    for b in binaries:
        p = subprocess.run(["ldd", str(b)], capture_output=True, text=True, check=False)
        out.update(re.findall(r"(/\S+\.so[^\s]*)", p.stdout))
    return out


def build_initramfs(
    tree: KernelTree,
    modules: list[Path],
    out: Path,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write the guest initramfs for ``tree`` with ``modules`` to ``out``."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise VMError("busybox is not installed (apt-get install busybox-static)")
    if _libs([Path(busybox)]):
        raise VMError(f"{busybox} is not static (apt-get install busybox-static)")
    tools: list[tuple[str, Path]] = []
    for t in HOST_TOOLS:
        found = shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin")
        if found is None:
            raise VMError(f"host tool {t!r} is missing (see .ci/vm-tier for the apt packages)")
        tools.append((t, Path(found)))

    out.parent.mkdir(parents=True, exist_ok=True)
    c = _Cpio(out)
    for d in ("proc", "sys", "dev", "tmp", "root", "etc", "klp/mods", "klp/work", "selftests"):
        c.dir(d)
    c.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    c.file("etc/group", b"root:x:0:\n")
    c.copy("bin/busybox", Path(busybox), 0o755)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for a in applets.stdout.split():
        if a not in ("busybox", "stat", "bash"):  # functions.sh calls /bin/stat --format
            c.symlink(f"bin/{a}", "busybox")
    for name, path in tools:
        dest = "usr/sbin/" + name if name == "sysctl" else "usr/bin/" + name
        c.copy(dest, path, 0o755)
    c.symlink("bin/stat", "../usr/bin/stat")
    c.symlink("bin/bash", "../usr/bin/bash")
    c.symlink("usr/bin/awk", "mawk")
    for link in _KMOD_LINKS:
        c.symlink(f"usr/sbin/{link}", "../bin/kmod")
    for lib in sorted(_libs([p for _, p in tools])):
        c.copy(lib, Path(lib), 0o755)

    c.copy("klp/functions.sh", tree.functions_sh, 0o644)
    c.file("klp/klpsim.sh", _data("klpsim.sh").encode())
    c.file("klp/agent.sh", _data("agent.sh").encode(), 0o755)
    c.file("klp/reset.sh", _data("reset.sh").encode(), 0o755)
    c.file("klp/run-scenario.sh", _data("run-scenario.sh").encode(), 0o755)
    c.file("init", _data("init.sh").encode(), 0o755)
    c.symlink("klp/work/test_modules", "/klp/mods")
    c.symlink(f"lib/modules/{tree.kver}/extra", "/klp/mods")
    for ko in modules:
        c.copy(f"klp/mods/{ko.name}", ko, 0o644)

    st = tree.selftests_dir
    for f in sorted(st.iterdir()):
        if f.is_file():
            c.copy(f"selftests/livepatch/{f.name}", f)
    c.symlink("selftests/livepatch/test_modules", "/klp/mods")
    for name, path in (extra_files or {}).items():
        c.copy(name, path)
    c.close()
    return out
