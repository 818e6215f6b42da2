"""The module loader: load_module(), delete_module() and /sys/module.

The order of events mirrors kernel/module/main.c, since livepatch's log
depends on it:

* load: taint notices; the module is linked in as UNFORMED, then COMING;
  prepare_coming_module() runs ftrace_module_enable() and
  klp_module_coming() (``prepare_coming`` hooks) and then the COMING
  notifier chain; parameters are parsed; sysfs appears; the init function
  runs; the module is LIVE.
* unload: GOING; the exit function runs first; then the GOING notifier
  chain; then klp_module_going() and ftrace_release_mod() (``after_going``
  hooks).
* a failing init or bad parameters take the GOING path after COMING.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from klpsim.kernel.errno import EAGAIN, EBUSY, EEXIST, ENOENT, ENOEXEC, ENOSPC
from klpsim.kernel.params import ParamSpec
from klpsim.kernel.printk import KERN_ERR, KERN_NOTICE, KERN_WARNING, escape

if TYPE_CHECKING:
    from klpsim.kernel.fs import Show, Store
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.symbols import FuncBody, Symbol

__all__ = [
    "MODULE_STATE_LIVE",
    "MODULE_STATE_COMING",
    "MODULE_STATE_GOING",
    "MODULE_STATE_UNFORMED",
    "FunctionSpec",
    "ModuleSpec",
    "ModuleCode",
    "Module",
    "ModuleLoader",
    "MODULE_NAME_LEN",
    "MODULE_NAME_MAX",
    "is_c_identifier",
    "module_name_error",
]

MODULE_STATE_LIVE, MODULE_STATE_COMING, MODULE_STATE_GOING, MODULE_STATE_UNFORMED = 0, 1, 2, 3
MODULE_NAME_LEN = 56
MODULE_NAME_MAX = MODULE_NAME_LEN - 1
"""The longest module name: MODULE_NAME_LEN less the terminating NUL."""

_DIGITS = frozenset("0123456789")
_IDENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") | _DIGITS


def is_c_identifier(s: str) -> bool:
    """``[A-Za-z_][A-Za-z0-9_]*``: what kbuild makes KBUILD_MODNAME of, and
    what a C function is called."""
    return bool(s) and s[0] not in _DIGITS and _IDENT_CHARS.issuperset(s)


def module_name_error(name: str) -> str | None:
    """Why *name* cannot be a module's name (as klpsim's modules are named),
    or None."""
    if not is_c_identifier(name):
        return f"'{escape(name)}' is not a module name (letters, digits and '_')"
    if len(name) > MODULE_NAME_MAX:
        return (
            f"module name '{escape(name[:20])}...' is longer than {MODULE_NAME_MAX} characters "
            "(MODULE_NAME_LEN)"
        )
    return None


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function in a module's text."""

    name: str
    impl: FuncBody | None = None
    """Body: impl(ctx, *args); ctx is a machine.CallContext (``kernel``,
    ``task`` and ``sym``)."""
    notrace: bool = False


class ModuleCode:
    """The Python model of a module's C code: init and exit.

    Subclasses use kernel services the way C code uses exported symbols:
    ``self.kernel.exports["klp_enable_patch"]``.
    """

    def __init__(self, mod: Module):
        self.mod = mod
        self.kernel = mod.kernel

    def init(self) -> int:
        return 0

    def exit(self) -> None:
        pass

    has_exit = True

    def sym(self, name: str) -> Symbol:
        """A function of this module's own text (its ModuleSpec declares it)."""
        sym = self.mod.text.lookup(name)
        if sym is None:
            raise LookupError(f"module {self.mod.name} has no function {name}")
        return sym

    def pr_info(self, text: str) -> None:
        """pr_info() with ``pr_fmt(KBUILD_MODNAME ": " fmt)``."""
        self.kernel.log.printk(6, f"{self.mod.name}: {text}")


@dataclass(frozen=True)
class ModuleSpec:
    """A module image (a ``.ko``): what insmod hands to the kernel."""

    name: str
    code: type[ModuleCode] = ModuleCode
    livepatch: bool = False  # modinfo livepatch=Y
    params: tuple[ParamSpec, ...] = ()
    functions: tuple[FunctionSpec, ...] = ()
    in_tree: bool = False
    signed: bool = False
    exports: tuple[str, ...] = ()
    """EXPORT_SYMBOL()ed functions."""
    error_injection: tuple[tuple[str, str], ...] = ()
    """ALLOW_ERROR_INJECTION() entries: (function, type)."""
    source: str = "<built-in>"
    extra: dict[str, object] = field(default_factory=dict, compare=False)


class Module:
    """A loaded ``struct module``."""

    def __init__(self, kernel: Kernel, spec: ModuleSpec):
        self.kernel = kernel
        self.spec = spec
        self.name = spec.name
        self.state = MODULE_STATE_UNFORMED
        self.refcnt = 0
        self.holders: dict[str, int] = {}
        self.klp = spec.livepatch
        self.klp_alive = False
        # Values typed by each ParamSpec.type, known to the module code only.
        self.params: dict[str, Any] = {p.name: p.default for p in spec.params}
        self.text = kernel.kallsyms.new_module_object(spec.name)
        for f in spec.functions:
            self.text.add(f.name, f.impl, notrace=f.notrace)
        self.code: ModuleCode = spec.code(self)
        self.private: dict[str, object] = {}

    def try_module_get(self, holder: str = "") -> bool:
        """Take a reference; *holder* only labels it, for the model's checks."""
        if self.state == MODULE_STATE_GOING:
            return False
        self.refcnt += 1
        self.holders[holder] = self.holders.get(holder, 0) + 1
        return True

    def module_put(self, holder: str = "") -> None:
        self.refcnt -= 1
        self.holders[holder] = self.holders.get(holder, 0) - 1

    @property
    def state_name(self) -> str:
        return {
            MODULE_STATE_LIVE: "[MODULE_STATE_LIVE] Normal state",
            MODULE_STATE_COMING: "[MODULE_STATE_COMING] Full formed, running module_init",
            MODULE_STATE_GOING: "[MODULE_STATE_GOING] Going away",
            MODULE_STATE_UNFORMED: "[MODULE_STATE_UNFORMED] Still setting it up",
        }[self.state]


Hook = Callable[[Module], int]


class ModuleLoader:
    """insmod/rmmod, the module list and the hooks around them."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.modules: dict[str, Module] = {}
        self.prepare_coming: list[Hook] = []  # called directly, in order
        self.after_going: list[Callable[[Module], None]] = []
        self.release: list[Callable[[Module], None]] = []  # ftrace_release_mod(), on any free
        self.notifier: list[Callable[[Module, int], int]] = []  # module_notify_list
        self.tainted: set[str] = set()
        self.exported: dict[str, str] = {}  # symbol -> owning module
        self.last_unloaded = ""  # last_unloaded_module: name and taint flags

    def find_module(self, name: str) -> Module | None:
        return self.modules.get(name)

    def _taint(self, mod: Module) -> None:
        log = self.kernel.log
        if not mod.spec.in_tree and "O" not in self.tainted:
            self.tainted.add("O")
            log.printk(KERN_WARNING, f"{mod.name}: loading out-of-tree module taints kernel.")
        if mod.klp and "K" not in self.tainted:
            self.tainted.add("K")
            log.printk(KERN_NOTICE, f"{mod.name}: tainting kernel with TAINT_LIVEPATCH")
        if not mod.spec.signed and self.kernel.has_config("MODULE_SIG") and "E" not in self.tainted:
            self.tainted.add("E")
            log.printk(
                KERN_NOTICE,
                f"{mod.name}: module verification failed: signature "
                "and/or required key missing - tainting kernel",
            )

    def _notify(self, mod: Module, state: int) -> int:
        for fn in self.notifier:
            ret = fn(mod, state)
            if ret:
                return ret
        return 0

    def _parse_args(self, mod: Module, args: list[str]) -> int:
        """parse_args(): every argument is tried; the last error is returned.

        Names match with ``-`` and ``_`` equal (parameq()) but are printed
        as typed. Unknown ones go to unknown_module_param_cb(), which takes
        ``async_probe`` and ``dyndbg`` silently.
        """
        log = self.kernel.log
        specs = {p.name: p for p in mod.spec.params}
        ed = self.kernel.config.kstrtobool_enable_disable
        err = 0
        for i, arg in enumerate(args):
            if arg == "--":
                if args[i + 1 :]:
                    log.printk(
                        KERN_WARNING,
                        f"{mod.name}: parameters '{' '.join(args[i + 1 :])}' after `--' ignored",
                    )
                break
            name, eq, val = arg.partition("=")
            spec = specs.get(name.replace("-", "_"))
            if spec is None:
                if name.replace("-", "_") == "dyndbg":
                    log.dyndbg.control(f"module {mod.name} {val or '+p'}")
                elif name.replace("-", "_") != "async_probe":
                    log.printk(KERN_WARNING, f"{mod.name}: unknown parameter '{name}' ignored")
                continue
            if not eq and spec.type in ("bool", "invbool"):  # KERNEL_PARAM_OPS_FL_NOARG
                val = "1"
            ret, value = spec.parse(val, ed)
            if ret == -ENOSPC:
                log.printk(KERN_ERR, f"{mod.name}: `{val}' too large for parameter `{name}'")
            elif ret:
                log.printk(KERN_ERR, f"{mod.name}: `{val}' invalid for parameter `{name}'")
            if ret:
                err = ret
                continue
            mod.params[spec.name] = value
        return err

    def load_module(self, spec: ModuleSpec, args: list[str]) -> int:
        """init_module(2): 0 or a negative errno."""
        if spec.name in self.modules:
            return -EEXIST
        if len(spec.name) >= MODULE_NAME_LEN:
            return -ENOENT
        mod = Module(self.kernel, spec)
        self._taint(mod)
        # verify_exported_symbols(), in complete_formation()
        for name in spec.exports:
            owner = self.exported.get(name)
            if owner is not None:
                self.kernel.log.printk(
                    KERN_ERR, f"{mod.name}: exports duplicate symbol {name} (owned by {owner})"
                )
                return -ENOEXEC
        for name in spec.exports:
            self.exported[name] = mod.name
        self.modules[mod.name] = mod
        self.kernel.kallsyms.add_object(mod.text)
        mod.state = MODULE_STATE_COMING  # complete_formation()
        for hook in self.prepare_coming:
            ret = hook(mod)
            if ret:
                self._free(mod)
                return ret
        ret = self._notify(mod, MODULE_STATE_COMING)
        if not ret:
            ret = self._parse_args(mod, args)
        if ret:
            self._going(mod)
            return ret
        self._sysfs_setup(mod)
        ret = mod.code.init()
        if ret < 0:
            self._going(mod)
            return ret
        if ret > 0:
            self.kernel.log.printk(
                KERN_WARNING,
                f"do_init_module: '{mod.name}'->init suspiciously "
                f"returned {ret}, it should follow 0/-E convention\n"
                "do_init_module: loading module anyway...",
            )
        mod.state = MODULE_STATE_LIVE
        self._notify(mod, MODULE_STATE_LIVE)
        return 0

    def delete_module(self, name: str) -> int:
        """delete_module(2) with O_NONBLOCK, as rmmod calls it."""
        mod = self.modules.get(name)
        if mod is None:
            return -ENOENT
        if mod.state != MODULE_STATE_LIVE:
            return -EBUSY
        if not mod.code.has_exit:
            return -EBUSY  # an init but no exit: only a forced unload
        if mod.refcnt:
            return -EAGAIN  # try_stop_module(): -EWOULDBLOCK
        mod.state = MODULE_STATE_GOING
        mod.code.exit()
        self._going(mod)
        self.last_unloaded = mod.name + self._module_flags(mod, show_state=False)
        return 0

    @classmethod
    def _module_flags(cls, mod: Module, show_state: bool = True) -> str:
        """module_flags(): ``(OEK)``, with ``+``/``-`` while coming/going."""
        flags = cls._taint_flags(mod)
        if show_state and mod.state == MODULE_STATE_GOING:
            flags += "-"
        elif show_state and mod.state == MODULE_STATE_COMING:
            flags += "+"
        return f"({flags})" if flags else ""

    def print_modules(self) -> str:
        """print_modules(): the line a WARN or an oops prints, newest module first."""
        out = "Modules linked in:"
        for mod in reversed(list(self.modules.values())):
            if mod.state != MODULE_STATE_UNFORMED:
                out += f" {mod.name}{self._module_flags(mod)}"
        if self.last_unloaded:
            out += f" [last unloaded: {self.last_unloaded}]"
        return out

    def _going(self, mod: Module) -> None:
        mod.state = MODULE_STATE_GOING
        self._notify(mod, MODULE_STATE_GOING)
        for hook in self.after_going:
            hook(mod)
        self._free(mod)

    def _free(self, mod: Module) -> None:
        for hook in self.release:
            hook(mod)
        for name in mod.spec.exports:
            if self.exported.get(name) == mod.name:
                del self.exported[name]
        self.kernel.fs.remove(f"/sys/module/{mod.name}")
        self.kernel.kallsyms.remove_object(mod.name)
        self.modules.pop(mod.name, None)

    def _sysfs_setup(self, mod: Module) -> None:
        fs = self.kernel.fs
        base = f"/sys/module/{mod.name}"
        fs.create_file(f"{base}/refcnt", 0o444, lambda: f"{mod.refcnt}\n")
        fs.create_file(
            f"{base}/initstate",
            0o444,
            lambda: (
                {
                    MODULE_STATE_LIVE: "live",
                    MODULE_STATE_COMING: "coming",
                    MODULE_STATE_GOING: "going",
                }.get(mod.state, "unformed")
                + "\n"
            ),
        )
        fs.create_file(f"{base}/taint", 0o444, lambda: self._taint_flags(mod) + "\n")
        fs.mkdir(f"{base}/holders")
        for spec in mod.spec.params:
            if spec.perm:
                fs.create_file(
                    f"{base}/parameters/{spec.name}",
                    spec.perm,
                    self._param_show(mod, spec),
                    self._param_store(mod, spec),
                )

    @staticmethod
    def _taint_flags(mod: Module) -> str:
        flags = "" if mod.spec.in_tree else "O"
        flags += "" if mod.spec.signed or not mod.kernel.has_config("MODULE_SIG") else "E"
        return flags + ("K" if mod.klp else "")

    @staticmethod
    def _param_show(mod: Module, spec: ParamSpec) -> Show:
        return lambda: spec.format(mod.params[spec.name]) + "\n"

    @staticmethod
    def _param_store(mod: Module, spec: ParamSpec) -> Store:
        kernel_ed = mod.kernel.config.kstrtobool_enable_disable

        def store(text: str) -> int:
            err, value = spec.parse(text, kernel_ed)
            if err:
                return err
            mod.params[spec.name] = value
            return len(text)

        return store
