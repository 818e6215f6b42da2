"""Out-of-tree module builds against an unpacked Debian headers tree.

``make -C <headers> M=<dir> modules`` with the Debian compiler (gcc-12 on
bookworm).  Two workarounds from real-artifacts.md part 3 apply:

* the 6.12 headers ship ``vmlinux``, so kbuild would run ``pahole`` to make
  module BTF; ``CONFIG_DEBUG_INFO_BTF_MODULES=`` turns that off;
* the modules are stripped of debug info afterwards (what ``INSTALL_MOD_STRIP``
  does), which keeps the initramfs and the serial transfers small.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .debian import KernelTree, cache_root
from .errors import VMError

__all__ = ["build_modules", "build_test_modules", "build_getpid_helper"]


def _make(tree: KernelTree, moddir: Path) -> None:
    cmd = [
        "make",
        "-s",
        "-C",
        str(tree.kbuild_dir),
        f"M={moddir}",
        f"-j{os.cpu_count() or 1}",
        "CONFIG_DEBUG_INFO_BTF_MODULES=",
        "modules",
    ]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise VMError("make is not installed (apt-get install make gcc-12)") from None
    if p.returncode != 0:
        errs = [ln for ln in (p.stderr + p.stdout).splitlines() if "error" in ln.lower()]
        first = errs[0] if errs else (p.stderr.strip().splitlines() or ["?"])[-1]
        raise VMError(f"module build in {moddir} failed: {first.strip()}")


def build_modules(
    tree: KernelTree,
    sources: dict[str, str],
    outdir: Path,
    strip: bool = True,
    headers: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Build one ``.ko`` per entry of ``sources`` (module name -> C text).

    The build is cached: ``outdir`` holds the sources, and a module is rebuilt
    only when its text or the kernel changed.  ``strip=False`` keeps the debug
    info; ``headers`` are extra files (name -> text) the sources include.
    Returns name -> .ko path.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(tree.kver.encode())
    for name in sorted(sources):
        key.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    if not strip:
        key.update(b"debug\0")
    for name in sorted(headers or {}):
        key.update(b"h:" + name.encode() + b"\0" + (headers or {})[name].encode() + b"\0")
    stamp = outdir / ".stamp"
    kos = {name: outdir / f"{name}.ko" for name in sources}
    if (
        stamp.exists()
        and stamp.read_text() == key.hexdigest()
        and all(k.exists() for k in kos.values())
    ):
        return kos
    for old in outdir.iterdir():
        if old.is_file():
            old.unlink()
    for name, text in sources.items():
        (outdir / f"{name}.c").write_text(text)
    for name, text in (headers or {}).items():
        (outdir / name).write_text(text)
    (outdir / "Kbuild").write_text("obj-m += " + " ".join(f"{n}.o" for n in sorted(sources)) + "\n")
    _make(tree, outdir)
    for name, ko in kos.items():
        if not ko.exists():
            raise VMError(f"module build produced no {name}.ko")
        if strip:
            subprocess.run(["strip", "--strip-debug", str(ko)], check=False)
    stamp.write_text(key.hexdigest())
    return kos


def build_test_modules(tree: KernelTree) -> dict[str, Path]:
    """The kernel's own livepatch test modules, built from linux-source."""
    srcdir = tree.test_modules_src
    sources = {c.stem: c.read_text() for c in sorted(srcdir.glob("test_klp*.c"))}
    if not sources:
        raise VMError(f"no test_klp*.c in {srcdir}")
    return build_modules(tree, sources, cache_root() / "build" / tree.kver / "test_modules")


def build_getpid_helper(tree: KernelTree) -> Path | None:
    """test-syscall.sh's ``test_klp-call_getpid`` (6.12), linked statically."""
    src = tree.selftests_dir / "test_klp-call_getpid.c"
    if not src.exists():
        return None
    out = cache_root() / "build" / tree.kver / "test_klp-call_getpid"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("gcc") is None:
        raise VMError("gcc is not installed (apt-get install gcc libc6-dev)")
    p = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        raise VMError(f"building {src.name} failed: {p.stderr.strip().splitlines()[-1:]}")
    return out
