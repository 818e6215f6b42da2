"""The real-kernel tier's Python API.

    rk = prepare("6.12")                  # download, unpack, build (cached)
    with rk.boot() as vm:                 # one persistent guest
        res = rk.run_script(vm, "scenario.sh", modules_dirs=["mods/"])
        res.log_lines, res.exit_status, res.stdout

:class:`RealKernel` ties together debian.py (packages), build.py (modules),
modgen.py (TOML definitions), initramfs.py and vm.py.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from pathlib import Path

from .build import build_getpid_helper, build_modules, build_test_modules
from .debian import KernelTree, cache_root, prepare_kernel
from .errors import VMError
from .initramfs import build_initramfs
from .modgen import TAINT_MODULE, generate_module, load_definition
from .selftests import SelftestResult, list_selftests, run_selftest
from .vm import VM, VMResult

__all__ = ["RealKernel", "prepare", "module_names_in"]

#: Helper verbs and commands whose first argument is a module name.
_MODULE_VERBS = {
    "load_mod",
    "load_lp",
    "load_lp_nowait",
    "load_failing_mod",
    "insmod",
}


def module_names_in(script: str) -> list[str]:
    """Module names a scenario script loads (helper verbs and ``insmod``)."""
    names: list[str] = []
    for raw in script.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # part of a multi-line quoted word (check_result)
        if len(words) >= 2 and words[0] in _MODULE_VERBS:
            w = words[1]
            name = Path(w).name.removesuffix(".ko") if ("/" in w or w.endswith(".ko")) else w
            if name not in names:
                names.append(name)
    return names


class RealKernel:
    """One Debian kernel (``6.1`` or ``6.12``), ready to boot."""

    def __init__(self, series: str, log=print):
        self.series = series
        self.log = log
        self.tree: KernelTree = prepare_kernel(series, log=log)
        self.test_modules = build_test_modules(self.tree)
        support = build_modules(
            self.tree,
            {"klpsim_taint": TAINT_MODULE},
            cache_root() / "build" / self.tree.kver / "support",
        )
        self.taint_module = support["klpsim_taint"]
        self.getpid = build_getpid_helper(self.tree)
        self.workdir = cache_root() / "run" / self.tree.kver
        self._symbols: set[str] | None = None
        self._loaded: dict[int, dict[str, str]] = {}  # id(vm) -> name -> digest

    @property
    def kver(self) -> str:
        return self.tree.kver

    def vmlinux_symbols(self) -> dict[str, int] | None:
        if self._symbols is None:
            self._symbols = self.tree.vmlinux_symbols()
        return self._symbols

    # ------------------------------------------------------------ the guest

    def initramfs(self, extra_modules: list[Path] = ()) -> Path:
        extra = {"klp/taint.ko": self.taint_module}
        if self.getpid is not None:
            extra["selftests/livepatch/test_klp-call_getpid"] = self.getpid
        mods = [*self.test_modules.values(), *extra_modules]
        return build_initramfs(self.tree, mods, self.workdir / "initrd.cpio", extra)

    def boot(self, extra_modules: list[Path] = ()) -> VM:
        """Start a persistent guest (a context manager)."""
        initrd = self.initramfs(list(extra_modules))

        def on_boot(vm: VM) -> None:
            # Load and unload one unsigned out-of-tree "livepatch" module so
            # that the once-per-boot taint notices are logged now, not in the
            # first script: every script's log then reads the same whatever
            # ran before it.
            rc, out = vm.run("insmod /klp/taint.ko && rmmod klpsim_taint && dmesg -C")
            if rc != 0:
                raise VMError(f"guest set-up failed: {out.strip()}")
            if self.tree.vmlinux_symbols() is None:
                rc, out = vm.run("grep -v '\\]$' /proc/kallsyms | grep ' [tTwW] '")
                if rc != 0:
                    raise VMError("could not read /proc/kallsyms in the guest")
                tmp = self.tree.kallsyms_cache.with_suffix(".tmp")
                tmp.write_text(out)
                tmp.replace(self.tree.kallsyms_cache)
                self._symbols = None
            self._loaded[id(vm)] = {}

        vm = VM(self.tree, initrd, self.workdir, on_boot=on_boot)
        vm.start()
        return vm

    # -------------------------------------------------------------- modules

    def resolve_module(self, name: str, search: list[Path]) -> tuple[str, bytes] | None:
        """Find ``name`` in ``search`` (TOML or .ko); None for kernel test modules.

        Returns (kind, .ko bytes).  A TOML definition is generated, checked
        against System.map and built here.
        """
        for d in search:
            toml = d / f"{name}.toml"
            if toml.exists():
                mod = load_definition(toml)
                src = generate_module(mod, self.vmlinux_symbols(), self.kver)
                out = cache_root() / "build" / self.kver / "gen" / name
                ko = build_modules(self.tree, {name: src}, out)[name]
                return "toml", ko.read_bytes()
            ko = d / f"{name}.ko"
            if ko.exists():
                return "ko", ko.read_bytes()
        if name in self.test_modules:
            return None
        where = ", ".join(str(d) for d in search) or "no module directories"
        raise VMError(f"unknown module {name!r}: not a kernel test module, not in {where}")

    def install_modules(self, vm: VM, names: list[str], search: list[Path]) -> None:
        loaded = self._loaded.setdefault(id(vm), {})
        changed = False
        for name in names:
            found = self.resolve_module(name, search)
            if found is None:
                continue
            data = found[1]
            digest = hashlib.sha256(data).hexdigest()
            if loaded.get(name) == digest:
                continue
            vm.put(f"/klp/mods/{name}.ko", data)
            loaded[name] = digest
            changed = True
        if changed:
            rc, out = vm.run("depmod -a")
            if rc != 0:
                raise VMError(f"depmod failed in the guest: {out.strip()}")

    # -------------------------------------------------------------- scripts

    def run_script(
        self,
        vm: VM,
        script: str | Path,
        modules_dirs: list[str | Path] = (),
        timeout: float = 900.0,
    ) -> VMResult:
        """Run one klpsim scenario script (a path, or the text itself)."""
        path = None
        if isinstance(script, Path) or ("\n" not in script and Path(script).exists()):
            path = Path(script)
            try:
                text = path.read_text()
            except OSError as e:
                raise VMError(f"{path}: cannot read: {e.strerror}") from None
        else:
            text = script
        search = [Path(d) for d in modules_dirs]
        if path is not None and (path.parent / "test_modules").is_dir():
            search.append(path.parent / "test_modules")
        self.install_modules(vm, module_names_in(text), search)
        if vm.boots and id(vm) not in self._loaded:
            self._loaded[id(vm)] = {}
        boots = vm.boots
        res = vm.run_guest_script(text, "/klp/run-scenario.sh", timeout=timeout)
        if vm.boots != boots:
            self._loaded[id(vm)] = {}
        return res

    def run_selftests(self, vm: VM, names: list[str] | None = None) -> list[SelftestResult]:
        out = []
        for name in names or list_selftests(self.tree.selftests_dir):
            t0 = time.monotonic()
            r = run_selftest(vm, name)
            self.log(
                f"{self.series} {name}: {len(r.passed)} ok, {len(r.failed)} not ok, "
                f"exit {r.result.exit_status} ({time.monotonic() - t0:.1f} s)"
            )
            out.append(r)
        return out


def prepare(kernel: str, log=print) -> RealKernel:
    """Download, unpack and build what ``kernel`` (``6.1`` or ``6.12``) needs."""
    return RealKernel(kernel, log=log)
