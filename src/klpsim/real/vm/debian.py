"""Debian kernel packages: find, download and unpack a 6.1 or 6.12 kernel.

The Debian ABI (``6.1.0-56``, ``6.12.117+deb12``) moves with every security
update and the archive keeps only the newest one, so nothing here names an
ABI: it is read at run time from the ``linux-headers-*`` metapackage that
apt knows about.  The packages are fetched with ``apt-get download`` (never
installed) and unpacked into the cache::

    $XDG_CACHE_HOME/klpsim/kernels/<kver>/
        boot/vmlinuz-<kver>, boot/System.map-<kver>, boot/config-<kver>
        headers/usr/src/linux-headers-<kver>/      kbuild tree for M= builds
        src/                                       livepatch parts of linux-source

6.1 comes from bookworm (or bookworm-security); 6.12 from bookworm-security's
``linux-6.12`` source package when the system lists know it, otherwise from
bookworm-backports through a private apt list directory (the system's apt
configuration is left alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import VMError

__all__ = [
    "SERIES",
    "KernelPackages",
    "KernelTree",
    "cache_lock",
    "cache_root",
    "prepare_kernel",
    "resolve_packages",
]

#: Kernel series the tier supports, and the headers metapackage that names the
#: current ABI of each in the system's apt lists.
SERIES = {"6.1": "linux-headers-amd64", "6.12": "linux-headers-6.12-amd64"}

_BACKPORTS = "deb http://deb.debian.org/debian bookworm-backports main\n"

# Parts of linux-source that the tier uses: the selftests (functions.sh,
# test-*.sh and, since 6.9, test_modules/), the older module location, and
# the sample livepatches (fixtures of ``klpsim inspect``).
_SOURCE_PARTS = ("tools/testing/selftests/livepatch/", "lib/livepatch/", "samples/livepatch/")

# What caches unpacked before src/.parts existed hold.
_FIRST_PARTS = ("tools/testing/selftests/livepatch/", "lib/livepatch/")


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-$HOME/.cache}/klpsim``, created on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "klpsim"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def cache_lock(name: str = "lock"):
    """Serialise cache writers (downloads, builds) across processes."""
    with open(cache_root() / f".{name}", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, cwd: Path | None = None, env: dict | None = None) -> str:
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise VMError(f"{what}: command not found: {cmd[0]}") from None
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit status {p.returncode}"
        raise VMError(f"{what} failed: {last}")
    return p.stdout


@dataclass(frozen=True)
class KernelPackages:
    """The Debian packages that make up one kernel, all at one version."""

    series: str
    """``6.1`` or ``6.12``."""
    kver: str
    """``uname -r`` of the kernel, e.g. ``6.1.0-56-amd64``."""
    version: str
    """Debian package version, e.g. ``6.1.192-2``."""
    image: str
    """Image package (holds ``/boot/vmlinuz``, ``System.map`` and ``config``)."""
    headers: tuple[str, ...]
    """Headers, headers-common and kbuild packages (``name=version``)."""
    source: str
    """``linux-source-<series>=<version>``."""
    apt_opts: tuple[str, ...]
    """Extra apt options (a private list directory for backports), or ()."""


@dataclass(frozen=True)
class KernelTree:
    """An unpacked kernel in the cache."""

    packages: KernelPackages
    root: Path
    vmlinuz: Path
    system_map: Path
    config: Path
    kbuild_dir: Path
    """``make -C`` directory for out-of-tree module builds."""
    source_dir: Path
    """Top of the unpacked parts of linux-source."""

    @property
    def series(self) -> str:
        return self.packages.series

    @property
    def kver(self) -> str:
        return self.packages.kver

    @property
    def selftests_dir(self) -> Path:
        """``tools/testing/selftests/livepatch`` from linux-source."""
        return self.source_dir / "tools/testing/selftests/livepatch"

    @property
    def test_modules_src(self) -> Path:
        """Directory holding the kernel's ``test_klp_*.c`` (moved in 6.9)."""
        new = self.selftests_dir / "test_modules"
        return new if new.is_dir() else self.source_dir / "lib/livepatch"

    @property
    def samples_dir(self) -> Path:
        """``samples/livepatch`` from linux-source (livepatch-sample.c and friends)."""
        return self.source_dir / "samples/livepatch"

    @property
    def functions_sh(self) -> Path:
        return self.selftests_dir / "functions.sh"

    @property
    def kallsyms_cache(self) -> Path:
        """Text symbols of vmlinux as the booted kernel lists them (see vmlinux_symbols)."""
        return self.root / "kallsyms.txt"

    def vmlinux_symbols(self) -> dict[str, int] | None:
        """Text symbol name -> number of occurrences in vmlinux, or None if unknown.

        Debian's image package ships a stub System.map (one line: "The real
        System.map is in the linux-image-<version>-dbg package", an 858 MB
        download), so the real list comes from the guest's /proc/kallsyms,
        saved on the first boot of this kernel.  A real System.map is used
        when there is one.
        """
        for path in (self.system_map, self.kallsyms_cache):
            if not path.exists():
                continue
            counts: dict[str, int] = {}
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[1] in "tTwW":
                        counts[parts[2]] = counts.get(parts[2], 0) + 1
            if len(counts) > 1000:
                return counts
        return None


# ---------------------------------------------------------------- apt queries


def _apt_show(name: str, apt_opts: tuple[str, ...]) -> dict[str, str] | None:
    """The candidate's control fields, or None when apt does not know it."""
    p = subprocess.run(
        ["apt-cache", *apt_opts, "show", "--no-all-versions", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0 or not p.stdout.strip():
        return None
    fields: dict[str, str] = {}
    key = None
    for line in p.stdout.splitlines():
        if not line:
            break
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _deps(fields: dict[str, str]) -> list[str]:
    """First alternative of each Depends entry, without version constraints."""
    out = []
    for entry in fields.get("Depends", "").split(","):
        first = entry.split("|")[0].strip()
        if first:
            out.append(first.split()[0])
    return out


def _backports_opts() -> tuple[str, ...]:
    d = cache_root() / "apt-backports"
    (d / "lists/partial").mkdir(parents=True, exist_ok=True)
    (d / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    (d / "sources.list").write_text(_BACKPORTS)
    opts = (
        f"-o=Dir::Etc::SourceList={d / 'sources.list'}",
        "-o=Dir::Etc::SourceParts=/nonexistent",
        f"-o=Dir::State::Lists={d / 'lists'}",
        f"-o=Dir::Cache={d / 'cache'}",
    )
    if not any((d / "lists").glob("*Packages*")):
        _run(["apt-get", *opts, "update", "-qq"], "apt-get update (bookworm-backports)")
    return opts


def _ensure_system_lists() -> None:
    if _apt_show("linux-headers-amd64", ()) is None:
        if os.geteuid() != 0:
            raise VMError("apt lists are empty and we are not root: run 'apt-get update' as root")
        _run(["apt-get", "update", "-qq"], "apt-get update")


def resolve_packages(series: str) -> KernelPackages:
    """Find the current Debian packages of ``series`` (``6.1`` or ``6.12``)."""
    if series not in SERIES:
        raise VMError(f"unknown kernel {series!r}: choose one of {', '.join(SERIES)}")
    _ensure_system_lists()
    apt_opts: tuple[str, ...] = ()
    meta = _apt_show(SERIES[series], apt_opts)
    if meta is None and series != "6.1":
        apt_opts = _backports_opts()
        meta = _apt_show("linux-headers-amd64", apt_opts)
    if meta is None:
        raise VMError(f"apt knows no headers metapackage for kernel {series}")
    hdr = next((d for d in _deps(meta) if d.startswith("linux-headers-")), None)
    if hdr is None or not hdr.startswith(f"linux-headers-{series}."):
        raise VMError(f"headers metapackage for {series} points at {hdr!r}, not a {series} kernel")
    kver = hdr.removeprefix("linux-headers-")
    hfields = _apt_show(hdr, apt_opts)
    if hfields is None:
        raise VMError(f"apt does not know {hdr}")
    version = hfields["Version"]
    headers = [f"{hdr}={version}"]
    for dep in _deps(hfields):
        if dep.startswith("linux-headers-") or dep.startswith("linux-kbuild-"):
            f = _apt_show(dep, apt_opts)
            if f is None:
                raise VMError(f"apt does not know {dep} (needed by {hdr})")
            headers.append(f"{dep}={f['Version']}")
    image = None
    for name in (f"linux-image-{kver}", f"linux-image-{kver}-unsigned"):
        f = _apt_show(name, apt_opts)
        if f is not None and f.get("Version") == version:
            image = f"{name}={version}"
            break
    if image is None:
        raise VMError(f"apt has no linux-image-{kver} at version {version}")
    src = f"linux-source-{series}"
    f = _apt_show(src, apt_opts)
    if f is None:
        raise VMError(f"apt does not know {src}")
    return KernelPackages(
        series=series,
        kver=kver,
        version=version,
        image=image,
        headers=tuple(headers),
        source=f"{src}={version}",
        apt_opts=apt_opts,
    )


# ------------------------------------------------------------ download/unpack


def _download(pkgs: KernelPackages, specs: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise VMError("downloading Debian kernel packages needs root (apt-get download)")
    _run(
        ["apt-get", *pkgs.apt_opts, "download", "-qq", "-o=APT::Sandbox::User=root", *specs],
        "apt-get download " + " ".join(s.split("=")[0] for s in specs),
        cwd=dest,
    )
    out = []
    for spec in specs:
        name = spec.split("=")[0]
        found = sorted(dest.glob(f"{name}_*.deb"))
        if not found:
            raise VMError(f"apt-get download left no .deb for {name}")
        out.append(found[-1])
    return out


def _deb_extract(deb: Path, dest: Path, members: list[str] | None = None) -> None:
    """Unpack a .deb's data (all of it, or only ``members``) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    cmd = ["tar", "-x", "-C", str(dest)]
    if members:
        cmd += ["--wildcards", *members]
    tar = subprocess.run(cmd, stdin=dpkg.stdout, capture_output=True, text=True, check=False)
    assert dpkg.stdout is not None  # stdout=PIPE
    dpkg.stdout.close()
    rc = dpkg.wait()
    if rc != 0 or tar.returncode != 0:
        raise VMError(f"unpacking {deb.name} failed: {tar.stderr.strip() or rc}")


def _extract_source(deb: Path, series: str, dest: Path, parts: tuple[str, ...]) -> None:
    """Pull ``parts`` of linux-source's inner tar.xz into ``dest``.

    ``dest/.parts`` lists the parts asked for so far (one a line, whether the
    tarball had them or not: ``lib/livepatch/`` is gone in 6.9), so that a
    part wanted later is extracted into an existing cache.
    """
    tmp = dest.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _deb_extract(deb, tmp, [f"./usr/src/linux-source-{series}.tar.xz"])
    inner = tmp / f"usr/src/linux-source-{series}.tar.xz"
    if not inner.exists():
        raise VMError(f"{deb.name} holds no linux-source-{series}.tar.xz")
    prefix = f"linux-source-{series}/"
    dest.mkdir(parents=True, exist_ok=True)
    # xz must stream the whole tarball; tar(1) with wildcards is faster than
    # Python's tarfile here, so use it.  tar exits 2 when a pattern matches
    # nothing, which is expected for a part that moved.
    p = subprocess.run(
        ["tar", "-xJf", str(inner), "-C", str(dest), "--strip-components=1", "--wildcards"]
        + [prefix + part + "*" for part in parts],
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(tmp, ignore_errors=True)
    if not (dest / _SOURCE_PARTS[0] / "functions.sh").exists():
        raise VMError(
            f"linux-source-{series} has no {_SOURCE_PARTS[0]}functions.sh ({p.stderr.strip()})"
        )
    done = set(_source_parts_done(dest)) | set(parts)
    (dest / ".parts").write_text("".join(f"{part}\n" for part in sorted(done)))


def _source_parts_done(src: Path) -> tuple[str, ...]:
    """The parts of linux-source already asked for in ``src`` (see _extract_source)."""
    try:
        return tuple(ln for ln in (src / ".parts").read_text().splitlines() if ln)
    except FileNotFoundError:
        return _FIRST_PARTS if src.is_dir() else ()


def _fix_headers(hroot: Path, kver: str) -> Path:
    """Point the headers' absolute ``include /usr/src/...`` at the unpacked tree."""
    kdir = hroot / f"usr/src/linux-headers-{kver}"
    if not (kdir / "Makefile").exists():
        raise VMError(f"headers for {kver} have no usr/src/linux-headers-{kver}/Makefile")
    for mk in [kdir / "Makefile", *kdir.glob("scripts/Makefile*")]:
        text = mk.read_text()
        fixed = text.replace("include /usr/src/", f"include {hroot}/usr/src/")
        if fixed != text:
            mk.write_text(fixed)
    # kbuild's tools live in linux-kbuild-*, referenced through symlinks that
    # point at /usr/lib/linux-kbuild-*; make them relative to the unpacked tree.
    for link in list(hroot.rglob("*")):
        if link.is_symlink():
            target = os.readlink(link)
            if target.startswith("/usr/"):
                link.unlink()
                link.symlink_to(hroot / target.lstrip("/"))
    return kdir


def prepare_kernel(series: str, log=print) -> KernelTree:
    """Resolve, download (once) and unpack the kernel ``series``.

    The result is cached under ``cache_root()/kernels/<kver>``; a second call
    with the same Debian ABI does no network access beyond ``apt-cache``.
    """
    pkgs = resolve_packages(series)
    with cache_lock():
        return _prepare(pkgs, series, log)


def _prepare(pkgs: KernelPackages, series: str, log) -> KernelTree:
    root = cache_root() / "kernels" / pkgs.kver
    debs = cache_root() / "debs" / pkgs.kver
    boot = root / "boot"
    hroot = root / "headers"
    src = root / "src"
    if not (root / ".complete").exists():
        log(f"kernel {series}: {pkgs.kver} ({pkgs.version}): downloading")
        root.mkdir(parents=True, exist_ok=True)
        wanted = [pkgs.image, *pkgs.headers, pkgs.source]
        files = dict(zip(wanted, _download(pkgs, wanted, debs), strict=True))
        log(f"kernel {series}: unpacking")
        shutil.rmtree(hroot, ignore_errors=True)
        for spec in pkgs.headers:
            _deb_extract(files[spec], hroot)
        _deb_extract(files[pkgs.image], root, ["./boot/*"])
        shutil.rmtree(src, ignore_errors=True)
        _extract_source(files[pkgs.source], series, src, _SOURCE_PARTS)
        _fix_headers(hroot, pkgs.kver)
        (root / ".complete").write_text(f"{pkgs}\n")
        shutil.rmtree(debs, ignore_errors=True)
    missing = tuple(p for p in _SOURCE_PARTS if p not in _source_parts_done(src))
    if missing:
        # A cache unpacked by an older klpsim: fetch linux-source again for
        # the parts it lacks (the .deb is not kept).
        log(f"kernel {series}: adding {', '.join(missing)} from {pkgs.source.split('=')[0]}")
        (deb,) = _download(pkgs, [pkgs.source], debs)
        _extract_source(deb, series, src, missing)
        shutil.rmtree(debs, ignore_errors=True)
    kdir = hroot / f"usr/src/linux-headers-{pkgs.kver}"
    tree = KernelTree(
        packages=pkgs,
        root=root,
        vmlinuz=boot / f"vmlinuz-{pkgs.kver}",
        system_map=boot / f"System.map-{pkgs.kver}",
        config=boot / f"config-{pkgs.kver}",
        kbuild_dir=kdir,
        source_dir=src,
    )
    for what, path in (
        ("vmlinuz", tree.vmlinuz),
        ("System.map", tree.system_map),
        ("config", tree.config),
        ("functions.sh", tree.functions_sh),
    ):
        if not path.exists():
            raise VMError(f"kernel {series}: {what} missing at {path}")
    return tree
