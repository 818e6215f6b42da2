"""Module definition files (``MOD.toml``): livepatches and plain target modules.

The format is fixed by scenarios.md. A definition that does not fit is
refused with a :class:`DefinitionError` naming the file and the key.

A plain module may also hook functions the way a small test module does,
registered in init after its /proc files and unregistered in exit (the C
generator, real/vm/modgen.py, writes the same module for a real kernel)::

    [[ftrace_ops]]                  # a struct ftrace_ops, ftrace_set_filter()ed
    funcs = ["cmdline_proc_show"]
    flags = ["SAVE_REGS"]           # optional: SAVE_REGS, IPMODIFY (default: none)

    [[kprobes]]                     # a struct kprobe on a function's entry
    symbol = "cmdline_proc_show"
    post_handler = true             # default false

Every hit logs one line: ``MOD: ftrace_opsN FUNC: regs ip F`` (the ip
argument and ftrace_regs' instruction pointer, both ``%ps``: a livepatch
older in the ops list than this ops has already set it to its new
function), ``MOD: kprobeN pre_handler SYM`` and ``MOD: kprobeN post_handler
SYM``. A registration that fails fails the load with its errno.
"""

import tomllib
from pathlib import Path
from typing import cast

from klpsim.kernel.errno import EINVAL, ENOSYS
from klpsim.kernel.module import FunctionSpec, ModuleCode, ModuleSpec
from klpsim.kernel.params import ParamSpec
from klpsim.livepatch.structs import KlpFunc, KlpObject, KlpState
from klpsim.modules.base import LivepatchCode, seq_puts

__all__ = ["DefinitionError", "load_definition", "parse_definition"]

ERROR_INJECTION_TYPES = ("NULL", "ERRNO", "ERRNO_NULL", "TRUE")
FTRACE_OPS_FLAGS = ("SAVE_REGS", "IPMODIFY")
OpsSpecs = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
"""``[[ftrace_ops]]``: (funcs, flags) of each ops."""
KprobeSpecs = tuple[tuple[str, bool], ...]
"""``[[kprobes]]``: (symbol, has a post_handler) of each kprobe."""


class DefinitionError(Exception):
    """A definition file that cannot be used: ``FILE: key 'K': what is wrong``."""


def _fail(path: Path, key: str, what: str) -> None:
    raise DefinitionError(f"{path}: key '{key}': {what}")


def _check(path, key, value, typ, what):
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        _fail(path, key, f"expected {what}, got {type(value).__name__} {value!r}")


def _check_keys(path, prefix, table: dict, allowed: set, required: set | frozenset = frozenset()):
    for key in table:
        if key not in allowed:
            _fail(path, f"{prefix}{key}", "unknown key")
    for key in required:
        if key not in table:
            _fail(path, f"{prefix}{key}", "missing")


def _replacement(modname: str, output: str | None):
    """A replacement: a seq_file show function that prints *output*, as the
    module generator for real kernels writes it (real/vm/modgen.py)."""
    return seq_puts(output if output is not None else f"{modname}: this has been live patched")


class TargetModule(ModuleCode):
    """A plain module: each function is a noinline show function behind
    /proc/MOD/F reading ``MOD: F: original output``; its ftrace_ops and
    kprobes are registered after the files; init and exit log
    ``MOD: MOD_init`` and ``MOD: MOD_exit``."""

    def init(self) -> int:
        kernel = self.kernel
        for sym in self.mod.text.symbols:

            def read(sym=sym) -> str:
                seq: list[str] = []
                kernel.call(kernel.sched.current, sym, seq)
                return "".join(seq)

            kernel.fs.create_file(f"/proc/{self.mod.name}/{sym.name}", 0o444, read)
        kernel.fs.mkdir(f"/proc/{self.mod.name}")
        ret = self._register_hooks()
        if ret:
            kernel.fs.remove(f"/proc/{self.mod.name}")
            return ret
        self.pr_info(f"{self.mod.name}_init")
        return 0

    def exit(self) -> None:
        self._unregister_hooks()
        self.kernel.fs.remove(f"/proc/{self.mod.name}")
        self.pr_info(f"{self.mod.name}_exit")

    @staticmethod
    def _ps(sym) -> str:
        """%ps: the name, and `` [mod]`` for a module's function."""
        return sym.name if sym.owner.name == "vmlinux" else f"{sym.name} [{sym.owner.name}]"

    def _register_hooks(self) -> int:
        """ftrace_set_filter() + register_ftrace_function() for each ops, then
        register_kprobe() for each kprobe; a failure undoes the earlier ones."""
        from klpsim.trace.ftrace import FTRACE_OPS_FL_IPMODIFY, FTRACE_OPS_FL_SAVE_REGS, FtraceOps

        kernel = self.kernel
        ftrace = kernel.exports["ftrace"]
        self.ops: list = []
        self.kps: list = []
        bits = {"SAVE_REGS": FTRACE_OPS_FL_SAVE_REGS, "IPMODIFY": FTRACE_OPS_FL_IPMODIFY}
        ops_specs = cast(OpsSpecs, self.mod.spec.extra.get("ftrace_ops", ()))
        for i, (funcs, flags) in enumerate(ops_specs):

            def handler(task, ip, ops, regs, i=i) -> None:
                self.pr_info(f"ftrace_ops{i} {self._ps(ip)}: regs ip {self._ps(regs.ip)}")

            ops = FtraceOps(f"{self.mod.name}_ops{i}", handler, sum(bits[f] for f in flags))
            ops.func_name = f"klpsim_ops{i}_func"  # as the C generator names it
            ops.func_mod, ops.func_size = self.mod.name, 0x20
            syms = [
                s
                for obj in kernel.kallsyms.objects.values()
                for s in obj.symbols
                if s.name in funcs and s.ftrace_loc
            ]
            if not all(any(s.name == f for s in syms) for f in funcs):
                self._unregister_hooks()
                return -EINVAL  # ftrace_set_filter(): no match
            ret = ftrace.ftrace_set_filter(ops, syms) or ftrace.register_ftrace_function(ops)
            if ret:
                self._unregister_hooks()
                return ret
            self.ops.append(ops)
        kprobes = kernel.exports.get("kprobes")
        kprobe_specs = cast(KprobeSpecs, self.mod.spec.extra.get("kprobes", ()))
        for i, (symbol, post) in enumerate(kprobe_specs):
            if kprobes is None:
                self._unregister_hooks()
                return -ENOSYS  # register_kprobe() without CONFIG_KPROBES

            def pre(kp, regs, task, i=i) -> int:
                self.pr_info(f"kprobe{i} pre_handler {kp.symbol_name}")
                return 0

            def post_handler(kp, regs, task, i=i) -> None:
                self.pr_info(f"kprobe{i} post_handler {kp.symbol_name}")

            kp = kprobes.new_kprobe(
                symbol, pre, post_handler if post else None, owner=self.mod.name
            )
            kp.struct_addr = self.mod.text.base + 0x1000 + 0x40 * i  # in the module's data
            ret = kprobes.register_kprobe(kp)
            if ret:
                self._unregister_hooks()
                return ret
            self.kps.append(kp)
        return 0

    def _unregister_hooks(self) -> None:
        kernel = self.kernel
        for kp in reversed(getattr(self, "kps", [])):
            kernel.exports["kprobes"].unregister_kprobe(kp)
            kp.freed = True  # its memory goes with the module
        for ops in reversed(getattr(self, "ops", [])):
            kernel.exports["ftrace"].unregister_ftrace_function(ops)
        self.kps, self.ops = [], []


def load_definition(path: Path, profile) -> ModuleSpec:
    """Read *path* and build the module it defines for *profile*'s kernel."""
    try:
        text = path.read_text()
    except OSError as e:
        raise DefinitionError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DefinitionError(f"{path}: not a text file") from None
    return parse_definition(text, path, profile)


def parse_definition(text: str, path: Path, profile) -> ModuleSpec:
    """Build the module that TOML *text* (named *path*) defines."""
    name = path.stem.replace("-", "_")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DefinitionError(f"{path}: {e}") from None
    livepatch = data.get("livepatch", False)
    _check(path, "livepatch", livepatch, bool, "a boolean")
    if livepatch:
        return _livepatch(path, name, data, profile)
    _check_keys(
        path, "", data, {"livepatch", "functions", "error_injection", "ftrace_ops", "kprobes"}
    )
    funcs = data.get("functions", [])
    _check(path, "functions", funcs, list, "an array of function names")
    for i, f in enumerate(funcs):
        _check(path, f"functions[{i}]", f, str, "a function name")
    spec = ModuleSpec(
        name,
        TargetModule,
        functions=tuple(FunctionSpec(f, seq_puts(f"{name}: {f}: original output")) for f in funcs),
        exports=tuple(funcs),  # EXPORT_SYMBOL_GPL, as the real-kernel generator writes them
        error_injection=_error_injection(path, data, set(funcs)),
        source=str(path),
    )
    spec.extra["ftrace_ops"] = _ftrace_ops(path, data)
    spec.extra["kprobes"] = _kprobes(path, data)
    return spec


def _ftrace_ops(path, data) -> OpsSpecs:
    """``[[ftrace_ops]]``: (funcs, flags) of each ops."""
    tables = data.get("ftrace_ops", [])
    _check(path, "ftrace_ops", tables, list, "an array of tables")
    out = []
    for i, t in enumerate(tables):
        where = f"ftrace_ops[{i}]"
        _check(path, where, t, dict, "a table")
        _check_keys(path, f"{where}.", t, {"funcs", "flags"}, {"funcs"})
        funcs = t["funcs"]
        _check(path, f"{where}.funcs", funcs, list, "an array of function names")
        if not funcs:
            _fail(path, f"{where}.funcs", "must name at least one function")
        for j, f in enumerate(funcs):
            _check(path, f"{where}.funcs[{j}]", f, str, "a function name")
        flags = t.get("flags", [])
        _check(path, f"{where}.flags", flags, list, "an array of flag names")
        for j, f in enumerate(flags):
            if f not in FTRACE_OPS_FLAGS:
                _fail(path, f"{where}.flags[{j}]", f"must be one of {', '.join(FTRACE_OPS_FLAGS)}")
        out.append((tuple(funcs), tuple(flags)))
    return tuple(out)


def _kprobes(path, data) -> KprobeSpecs:
    """``[[kprobes]]``: (symbol, has a post_handler) of each kprobe."""
    tables = data.get("kprobes", [])
    _check(path, "kprobes", tables, list, "an array of tables")
    out = []
    for i, t in enumerate(tables):
        where = f"kprobes[{i}]"
        _check(path, where, t, dict, "a table")
        _check_keys(path, f"{where}.", t, {"symbol", "post_handler"}, {"symbol"})
        _check(path, f"{where}.symbol", t["symbol"], str, "a function name")
        post = t.get("post_handler", False)
        _check(path, f"{where}.post_handler", post, bool, "a boolean")
        out.append((t["symbol"], post))
    return tuple(out)


def _error_injection(path, data, funcs: set) -> tuple:
    entries = data.get("error_injection", {})
    _check(path, "error_injection", entries, dict, "a table of function = type")
    out = []
    for func, etype in entries.items():
        _check(path, f"error_injection.{func}", etype, str, "a type name")
        if etype not in ERROR_INJECTION_TYPES:
            _fail(
                path,
                f"error_injection.{func}",
                f"type must be one of {', '.join(ERROR_INJECTION_TYPES)}",
            )
        if func not in funcs:
            _fail(path, f"error_injection.{func}", "not a function of this module")
        out.append((func, etype))
    return tuple(out)


def _livepatch(path: Path, name: str, data: dict, profile) -> ModuleSpec:
    fields = profile.patch_fields
    allowed = {
        "livepatch",
        "objects",
        "states",
        "replace",
        "replace_set",
        "replaceable",
        "error_injection",
    }
    _check_keys(path, "", data, allowed)
    replace = data.get("replace", False)
    _check(path, "replace", replace, bool, "a boolean")
    replace_set = data.get("replace_set", 0)
    _check(path, "replace_set", replace_set, int, "an integer")
    if not 0 <= replace_set < 2**32:
        _fail(path, "replace_set", "must be a u32")
    replaceable = data.get("replaceable", False)
    _check(path, "replaceable", replaceable, bool, "a boolean")
    objects = data.get("objects", [])
    _check(path, "objects", objects, list, "an array of tables")
    functions: list[FunctionSpec] = []
    obj_defs = []
    for i, obj in enumerate(objects):
        prefix = f"objects[{i}]."
        _check(path, f"objects[{i}]", obj, dict, "a table")
        _check_keys(path, prefix, obj, {"name", "funcs"}, {"name"})
        _check(path, prefix + "name", obj["name"], str, "a string")
        funcs = obj.get("funcs", [])
        _check(path, prefix + "funcs", funcs, list, "an array of tables")
        fdefs = []
        for j, f in enumerate(funcs):
            fp = f"{prefix}funcs[{j}]."
            _check(path, f"{prefix}funcs[{j}]", f, dict, "a table")
            _check_keys(path, fp, f, {"old_name", "new_name", "old_sympos", "output"}, {"old_name"})
            _check(path, fp + "old_name", f["old_name"], str, "a string")
            new_name = f.get("new_name", "livepatch_" + f["old_name"])
            _check(path, fp + "new_name", new_name, str, "a string")
            sympos = f.get("old_sympos", 0)
            _check(path, fp + "old_sympos", sympos, int, "an integer")
            if sympos < 0:
                _fail(path, fp + "old_sympos", "must not be negative")
            output = f.get("output")
            if output is not None:
                _check(path, fp + "output", output, str, "a string")
            functions.append(FunctionSpec(new_name, _replacement(name, output)))
            fdefs.append((f["old_name"], new_name, sympos))
        obj_defs.append((None if obj["name"] == "vmlinux" else obj["name"], fdefs))
    states = data.get("states", [])
    _check(path, "states", states, list, "an array of tables")
    state_defs = []
    for i, st in enumerate(states):
        sp = f"states[{i}]."
        _check(path, f"states[{i}]", st, dict, "a table")
        _check_keys(path, sp, st, {"id", "version"}, {"id"})
        _check(path, sp + "id", st["id"], int, "an integer")
        if st["id"] <= 0:
            _fail(path, sp + "id", "must be positive")
        version = st.get("version", 0)
        _check(path, sp + "version", version, int, "an integer")
        state_defs.append((st["id"], version))
    params = []
    if "replace" in fields:
        params.append(ParamSpec("replace", "int", 0o644, int(replace)))
    if "replace_set" in fields:
        params.append(ParamSpec("replace_set", "uint", 0o644, replace_set))
    if "replaceable" in fields:
        params.append(ParamSpec("replaceable", "int", 0o644, int(replaceable)))

    class DefinedLivepatch(LivepatchCode):
        def objects(self):
            return [
                KlpObject(objname, [KlpFunc(old, self.sym(new), pos) for old, new, pos in fd])
                for objname, fd in obj_defs
            ]

        def states(self):
            return [KlpState(i, v) for i, v in state_defs]

    DefinedLivepatch.__name__ = f"Livepatch_{name}"
    return ModuleSpec(
        name,
        DefinedLivepatch,
        livepatch=True,
        params=tuple(params),
        functions=tuple(functions),
        error_injection=_error_injection(path, data, {f.name for f in functions}),
        source=str(path),
    )
