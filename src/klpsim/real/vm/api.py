"""The real-kernel tier's Python API.

    rk = prepare("6.12")                  # download, unpack, build (cached)
    rk = prepare("replace-set")           # 6.12 built with the replace_set rules
    with rk.boot() as vm:                 # one persistent guest
        res = rk.run_script(vm, "scenario.sh", modules_dirs=["mods/"])
        res.log_lines, res.exit_status, res.stdout

:class:`RealKernel` ties together debian.py (packages) or rskernel.py (the
replace-set kernel), build.py (modules), modgen.py (TOML definitions),
initramfs.py and vm.py.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from klpsim.model.schema import DefinitionError, ModuleDef, load_definition
from klpsim.modules.resolver import ModuleError, module_file

from . import REPLACE_SET
from .bpftool import GUEST_PATH, TABLE_PATH, build_klpsim_bpf, livepatch_table
from .build import build_getpid_helper, build_modules, build_test_modules
from .debian import KernelTree, cache_lock, cache_root, prepare_kernel
from .errors import VMError
from .initramfs import build_initramfs
from .modgen import DEBIAN, REPLACE_SET_KERNEL, TAINT_MODULE, generate_file
from .selftests import SelftestResult, list_selftests, run_selftest
from .vm import VM, VMResult

__all__ = ["RealKernel", "prepare", "prepare_tree", "module_names_in"]

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


def prepare_tree(kernel: str, log=print) -> KernelTree:
    """The unpacked (or built) ``kernel``: ``6.1``, ``6.12`` or ``replace-set``."""
    if kernel == REPLACE_SET:
        from .rskernel import prepare_replace_set_kernel

        return prepare_replace_set_kernel(log=log)
    return prepare_kernel(kernel, log=log)


class RealKernel:
    """One real kernel (``6.1``, ``6.12`` or ``replace-set``), ready to boot."""

    def __init__(self, series: str, log=print):
        self.series = series
        self.log = log
        self.tree: KernelTree = prepare_tree(series, log=log)
        # The struct klp_patch fields generated modules set (modgen.py).
        self.caps = REPLACE_SET_KERNEL if series == REPLACE_SET else DEBIAN
        with cache_lock():
            self.test_modules = build_test_modules(self.tree)
            support = build_modules(
                self.tree,
                {"klpsim_taint": TAINT_MODULE},
                cache_root() / "build" / self.tree.kver / "support",
            )
            self.getpid = build_getpid_helper(self.tree)
        # The BPF verbs' loader (bpftool.py): built once for every kernel.
        self.klpsim_bpf = build_klpsim_bpf()
        self.taint_module = support["klpsim_taint"]
        # One directory per process: initramfs, console log, QEMU's stderr.
        base = cache_root() / "run" / self.tree.kver
        base.mkdir(parents=True, exist_ok=True)
        for old in base.iterdir():  # directories of processes that are gone
            if old.is_dir() and old.name.isdigit() and not Path(f"/proc/{old.name}").exists():
                shutil.rmtree(old, ignore_errors=True)
        self.workdir = base / str(os.getpid())
        self._symbols: dict[str, int] | None = None
        self._loaded: dict[int, dict[str, str]] = {}  # id(vm) -> name -> digest
        self._livepatch_defs: dict[int, dict[str, ModuleDef]] = {}  # id(vm) -> name -> def

    @property
    def kver(self) -> str:
        return self.tree.kver

    def vmlinux_symbols(self) -> dict[str, int]:
        """vmlinux text symbols (name -> count) of this kernel.

        Debian's System.map is a stub, so the list is the guest's
        /proc/kallsyms, saved by the first boot; when no boot has saved it
        yet, one short boot does.
        """
        if self._symbols is None:
            self._symbols = self.tree.vmlinux_symbols()
        if self._symbols is None:
            self.log(f"{self.series}: reading the kernel's symbol table (one boot)")
            self.boot().close()
            self._symbols = self.tree.vmlinux_symbols()
            if self._symbols is None:
                raise VMError(f"could not read the symbol table of {self.kver}")
        return self._symbols

    # ------------------------------------------------------------ the guest

    def initramfs(
        self, extra_modules: Sequence[Path] = (), extra_files: dict[str, Path] | None = None
    ) -> Path:
        extra = {"klp/taint.ko": self.taint_module, **(extra_files or {})}
        if self.getpid is not None:
            extra["selftests/livepatch/test_klp-call_getpid"] = self.getpid
        extra[GUEST_PATH] = self.klpsim_bpf
        table = self.workdir / "livepatch-funcs"
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(livepatch_table(()))
        extra[TABLE_PATH.lstrip("/")] = table
        mods = [*self.test_modules.values(), *extra_modules]
        return build_initramfs(self.tree, mods, self.workdir / "initrd.cpio", extra)

    def boot(
        self, extra_modules: Sequence[Path] = (), extra_files: dict[str, Path] | None = None
    ) -> VM:
        """Start a persistent guest (a context manager); ``extra_files``: guest path -> file."""
        initrd = self.initramfs(list(extra_modules), extra_files)

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
            self._livepatch_defs[id(vm)] = {}

        vm = VM(self.tree, initrd, self.workdir, on_boot=on_boot)
        vm.start()
        return vm

    # -------------------------------------------------------------- modules

    def find_module(self, name: str, search: list[Path]) -> Path | None:
        """``name``'s definition (``.toml``) or prebuilt ``.ko`` in ``search``
        (``livepatch-sample.ko`` holds ``livepatch_sample``).

        None when ``name`` is one of the kernel's own test modules (already in
        the guest); a name found nowhere is refused.
        """
        for d in search:
            for suffix in (".toml", ".ko"):  # as the model's resolver looks
                try:
                    path = module_file(d, name, suffix)
                except ModuleError as e:
                    raise VMError(str(e)) from None
                if path is not None:
                    return path
        if name in self.test_modules:
            return None
        where = ", ".join(str(d) for d in search) or "no module directories"
        raise VMError(f"unknown module {name!r}: not a kernel test module, not in {where}")

    def build_definitions(self, tomls: list[Path]) -> dict[str, Path]:
        """Generate and build TOML module definitions; name -> cached .ko.

        Every definition is checked first (model/schema.py: the rules the
        model applies); the ones not built before are then built together in
        one kbuild run.  A function this kernel lacks is the kernel's to
        refuse when the module loads, as on the model.  The cache is keyed by
        the generated C text, so an edited definition is rebuilt.
        """
        gen = cache_root() / "build" / self.kver / "gen"
        out: dict[str, Path] = {}
        todo: dict[str, str] = {}
        for toml in tomls:
            try:
                mod, src = generate_file(toml, self.caps)
            except DefinitionError as e:
                raise VMError(str(e)) from None
            key = hashlib.sha256(src.encode()).hexdigest()[:20]
            ko = gen / key / f"{mod.name}.ko"
            out[mod.name] = ko
            if not ko.exists():
                todo[mod.name] = src
        if todo:
            with cache_lock():
                self._build_batch(todo, out, gen)
        return out

    def _build_batch(self, todo: dict[str, str], out: dict[str, Path], gen: Path) -> None:
        todo = {n: src for n, src in todo.items() if not out[n].exists()}
        if todo:
            batch = gen / (
                "batch-" + hashlib.sha256(repr(sorted(todo.items())).encode()).hexdigest()[:12]
            )
            built = build_modules(self.tree, todo, batch)
            for name, ko in built.items():
                out[name].parent.mkdir(parents=True, exist_ok=True)
                tmp = out[name].with_suffix(".tmp")
                tmp.write_bytes(ko.read_bytes())
                tmp.replace(out[name])
            shutil.rmtree(batch, ignore_errors=True)

    def install_modules(self, vm: VM, names: list[str], search: list[Path]) -> None:
        """Build (once) and copy into the guest the modules ``names`` need."""
        found = {n: p for n in names if (p := self.find_module(n, search)) is not None}
        tomls = [p for p in found.values() if p.suffix == ".toml"]
        built = self.build_definitions(tomls) if tomls else {}
        loaded = self._loaded.setdefault(id(vm), {})
        changed = False
        for name, path in found.items():
            data = (built[name] if path.suffix == ".toml" else path).read_bytes()
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
        self._install_livepatch_table(vm, tomls)

    def _install_livepatch_table(self, vm: VM, tomls: list[Path]) -> None:
        """Add the livepatches of *tomls* to the guest's table of patched
        functions (bpftool.py: how ``call`` tells which body ran)."""
        defs = self._livepatch_defs.setdefault(id(vm), {})
        new = {d.name: d for d in map(load_definition, tomls)}
        if all(defs.get(n) == d for n, d in new.items()):
            return
        defs.update(new)
        vm.put(TABLE_PATH, livepatch_table(defs.values()).encode())

    # -------------------------------------------------------------- scripts

    def run_script(
        self,
        vm: VM,
        script: str | Path,
        modules_dirs: Sequence[str | Path] = (),
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
        # A reboot (on_boot) forgets which modules the guest holds.
        return vm.run_guest_script(text, "/klp/run-scenario.sh", timeout=timeout)

    def prebuild(self, modules_dirs: Sequence[str | Path]) -> dict[str, Path]:
        """Build every ``*.toml`` in ``modules_dirs`` in one kbuild run (cached)."""
        tomls = sorted(p for d in modules_dirs for p in Path(d).glob("*.toml"))
        return self.build_definitions(tomls) if tomls else {}

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
    """Download, unpack and build what ``kernel`` (``6.1``, ``6.12``, ``replace-set``) needs."""
    return RealKernel(kernel, log=log)
