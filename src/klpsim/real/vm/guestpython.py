"""A Python for the guest: Debian's ``python3.11-minimal``, for the Python collector.

The guest's initramfs has busybox, bash and a few GNU tools, but no Python.
The snapshot VM test runs the Python collector (real/collector.py, stdlib
only) in the guest next to the sh collector. For that it adds Debian's
minimal interpreter and standard library, ``python3.11-minimal`` and
``libpython3.11-minimal``: 6.6 MB of binary, 5 MB of library, and the
shared libraries ``ldd`` lists. The two packages are fetched with
``apt-get download`` (never installed) and unpacked into the cache::

    $XDG_CACHE_HOME/klpsim/guest-python/<version>/usr/bin/python3.11
                                                 /usr/lib/python3.11/...
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .debian import _apt_show, _deb_extract, _ensure_system_lists, _run, cache_lock, cache_root
from .errors import VMError

__all__ = ["PACKAGES", "guest_python_files"]

PACKAGES = ("python3.11-minimal", "libpython3.11-minimal")
#: Where the interpreter sits in the guest.
GUEST_PYTHON = "/usr/bin/python3.11"


def _unpacked(log) -> Path:
    _ensure_system_lists()
    versions = []
    for name in PACKAGES:
        fields = _apt_show(name, ())
        if fields is None:
            raise VMError(f"apt does not know {name}")
        versions.append(f"{name}={fields['Version']}")
    key = versions[0].split("=", 1)[1]
    root = cache_root() / "guest-python" / key
    if (root / ".complete").exists():
        return root
    with cache_lock():
        if (root / ".complete").exists():
            return root
        if os.geteuid() != 0:
            raise VMError("downloading python3.11-minimal needs root (apt-get download)")
        log(f"guest python: downloading {', '.join(versions)}")
        debs = cache_root() / "guest-python" / f".debs-{key}"
        shutil.rmtree(debs, ignore_errors=True)
        debs.mkdir(parents=True)
        _run(
            ["apt-get", "download", "-qq", "-o=APT::Sandbox::User=root", *versions],
            "apt-get download " + " ".join(PACKAGES),
            cwd=debs,
        )
        shutil.rmtree(root, ignore_errors=True)
        for deb in sorted(debs.glob("*.deb")):
            _deb_extract(deb, root)
        shutil.rmtree(debs, ignore_errors=True)
        if not (root / GUEST_PYTHON.lstrip("/")).exists():
            raise VMError(f"{PACKAGES[0]} holds no {GUEST_PYTHON}")
        (root / ".complete").write_text("\n".join(versions) + "\n")
    return root


def guest_python_files(log=print) -> dict[str, Path]:
    """Guest path -> host file: the interpreter, its library and its shared libraries."""
    root = _unpacked(log)
    files: dict[str, Path] = {}
    binary = root / GUEST_PYTHON.lstrip("/")
    files[GUEST_PYTHON.lstrip("/")] = binary
    lib = root / "usr/lib/python3.11"
    for path in sorted(lib.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[str(path.relative_to(root))] = path
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    for so in re.findall(r"(/\S+\.so[^\s]*)", ldd.stdout):
        files[so.lstrip("/")] = Path(so)
    return files
