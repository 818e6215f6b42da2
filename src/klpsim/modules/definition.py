"""Modules built from the schema: a module definition (model/schema.py)
becomes the ModuleSpec insmod hands to the simulated kernel.

What the built module does matches what real/vm/modgen.py generates in C
from the same definition, for the same kernel:

* a livepatch's replacement prints its ``output`` line into a seq_file
  when it is given one (a /proc show function's caller passes it) and
  returns the func's ``return`` value;
* ``replace``, ``replace_set`` and ``replaceable`` become module parameters
  (the TOML value is the default) for the fields the profile's kernel has
  (``Profile.patch_fields``); the others are ignored;
* a plain module's functions are show functions behind ``/proc/MOD/F``;
  its ``[[ftrace_ops]]`` and ``[[kprobes]]`` are registered in init after
  the files (a failure fails the load with its errno) and unregistered in
  exit. Every hit logs one line: ``MOD: ftrace_opsN FUNC: regs ip F`` (the
  ip argument and ftrace_regs' instruction pointer, both ``%ps``: a
  livepatch older in the ops list has already set the latter to its new
  function), ``MOD: kprobeN pre_handler SYM``, ``MOD: kprobeN post_handler SYM``.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from klpsim.kernel.errno import EINVAL, ENOSYS
from klpsim.kernel.machine import CallContext
from klpsim.kernel.module import FunctionSpec, ModuleCode, ModuleSpec
from klpsim.kernel.params import ParamSpec, ParamType, param_type
from klpsim.kernel.symbols import Regs, Symbol
from klpsim.kernel.tasks import Task
from klpsim.livepatch.profiles import Profile
from klpsim.livepatch.structs import KlpFunc, KlpObject, KlpState
from klpsim.model.schema import (
    PATCH_FIELDS,
    FtraceOpsDef,
    KprobeDef,
    LivepatchDef,
    ModuleDef,
    TargetDef,
)
from klpsim.modules.base import LivepatchCode, seq_puts
from klpsim.trace.ftrace import FTRACE_OPS_FL_IPMODIFY, FTRACE_OPS_FL_SAVE_REGS, Ftrace, FtraceOps
from klpsim.trace.kprobes import Kprobe, Kprobes

__all__ = ["build_module", "TargetModule", "OpsHit"]


def _c_int(u32: int) -> int:
    """The int C makes of a u32 (4294967295 is -1)."""
    return u32 - 2**32 if u32 > 2**31 - 1 else u32


# module_param() of each struct klp_patch field: (type, value from the
# definition). replace_set is an int, as in v2 4/4's test modules and the C
# generator: a u32 above INT_MAX is the negative int C makes of it.
_PATCH_PARAMS: dict[str, tuple[ParamType, Callable[[LivepatchDef], int]]] = {
    "replace": ("int", lambda d: int(d.replace)),
    "replace_set": ("int", lambda d: _c_int(d.replace_set)),
    "replaceable": ("int", lambda d: int(d.replaceable)),
}


def _replacement(text: str, ret: int) -> Callable[..., int]:
    """A replacement function: prints *text* into a seq_file when its caller
    passes one (a /proc show), and returns *ret*."""

    def new_func(ctx: CallContext, *args: Any) -> int:
        if args and isinstance(args[0], list):
            args[0].append(text + "\n")
        return ret

    return new_func


_OPS_FLAGS = {"SAVE_REGS": FTRACE_OPS_FL_SAVE_REGS, "IPMODIFY": FTRACE_OPS_FL_IPMODIFY}


class OpsHit(NamedTuple):
    """One call of a plain module's ftrace_ops callback (what its log line says)."""

    ops: int
    """Which ``[[ftrace_ops]]``."""
    ip: Symbol
    """The ip argument: the function hooked."""
    regs_ip: Symbol
    """ftrace_regs' instruction pointer when the callback ran."""


def _ps(sym: Symbol) -> str:
    """``%ps``: the name, and `` [mod]`` for a module's function."""
    return sym.name if sym.owner.name == "vmlinux" else f"{sym.name} [{sym.owner.name}]"


class TargetModule(ModuleCode):
    """A plain module: each function is a noinline show function behind
    /proc/MOD/F reading ``MOD: F: original output``; its ftrace_ops and
    kprobes are registered after the files; init and exit log
    ``MOD: MOD_init`` and ``MOD: MOD_exit`` (at the end of init, as the
    generated C does)."""

    ftrace_ops: tuple[FtraceOpsDef, ...] = ()
    kprobes: tuple[KprobeDef, ...] = ()

    def init(self) -> int:
        kernel = self.kernel
        kernel.fs.mkdir(f"/proc/{self.mod.name}")  # proc_mkdir()
        for sym in self.mod.text.symbols:

            def read(sym: Symbol = sym) -> str:
                seq: list[str] = []
                kernel.call(kernel.sched.current, sym, seq)
                return "".join(seq)

            kernel.fs.create_file(f"/proc/{self.mod.name}/{sym.name}", 0o444, read)
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

    def _register_hooks(self) -> int:
        """ftrace_set_filter() + register_ftrace_function() for each ops, then
        register_kprobe() for each kprobe; a failure undoes the earlier ones."""
        self.ops: list[FtraceOps] = []
        self.kps: list[Kprobe] = []
        self.hits: list[OpsHit] = []
        """Every call of an ops callback, in order."""
        if not self.ftrace_ops and not self.kprobes:
            return 0
        kernel = self.kernel
        ftrace: Ftrace = kernel.exports["ftrace"]
        for i, od in enumerate(self.ftrace_ops):

            def handler(task: Task, ip: Symbol, ops: FtraceOps, regs: Regs, i: int = i) -> None:
                self.hits.append(OpsHit(i, ip, regs.ip))
                self.pr_info(f"ftrace_ops{i} {_ps(ip)}: regs ip {_ps(regs.ip)}")

            ops = FtraceOps(
                f"{self.mod.name}_ops{i}", handler, sum(_OPS_FLAGS[f] for f in od.flags)
            )
            ops.func_name = FtraceOpsDef.callback(i)  # as the C generator names it
            ops.func_mod, ops.func_size = self.mod.name, 0x20
            syms = [
                s
                for obj in kernel.kallsyms.objects.values()
                for s in obj.symbols
                if s.name in od.funcs and s.ftrace_loc
            ]
            if not all(any(s.name == f for s in syms) for f in od.funcs):
                self._unregister_hooks()
                return -EINVAL  # ftrace_set_filter(): no match
            ret = ftrace.ftrace_set_filter(ops, syms) or ftrace.register_ftrace_function(ops)
            if ret:
                self._unregister_hooks()
                return ret
            self.ops.append(ops)
        kprobes: Kprobes | None = kernel.exports.get("kprobes")
        for i, kd in enumerate(self.kprobes):
            if kprobes is None:
                self._unregister_hooks()
                return -ENOSYS  # register_kprobe() without CONFIG_KPROBES

            def pre(kp: Kprobe, regs: Regs, task: Task, i: int = i) -> int:
                self.pr_info(f"kprobe{i} pre_handler {kp.symbol_name}")
                return 0

            def post(kp: Kprobe, regs: Regs, task: Task, i: int = i) -> None:
                self.pr_info(f"kprobe{i} post_handler {kp.symbol_name}")

            kp = kprobes.new_kprobe(
                kd.symbol, pre, post if kd.post_handler else None, owner=self.mod.name
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
        for kp in reversed(self.kps):
            kernel.exports["kprobes"].unregister_kprobe(kp)
            kp.freed = True  # its memory goes with the module
        for ops in reversed(self.ops):
            kernel.exports["ftrace"].unregister_ftrace_function(ops)
        self.kps, self.ops = [], []


def _own_param(defn: LivepatchDef, name: str, parmtype: str) -> ParamSpec:
    """A parameter a ``.ko`` declares. Its default and mode are in the
    module's data, which the model does not read: zero (or empty), and 0644;
    a ``replace`` or ``replace_set`` parameter defaults to the patch's own
    field, so that init code copying it changes nothing unless it is given."""
    typ = param_type(parmtype) or "charp"  # an unknown type takes any text
    default: object = [] if typ.endswith("_array") else "" if typ in ("charp", "string") else 0
    if typ in ("bool", "invbool"):
        default = False
    if name in PATCH_FIELDS:
        value: bool | int = getattr(defn, name)
        default = bool(value) if typ in ("bool", "invbool") else int(value)
        if typ == "int":
            default = _c_int(int(value))  # the u32 field as the int variable holds it
    return ParamSpec(name, typ, 0o644, default)


def build_module(defn: ModuleDef, profile: Profile) -> ModuleSpec:
    """The module *defn* defines, as *profile*'s kernel loads it."""
    if isinstance(defn, TargetDef):
        return _target(defn)
    return _livepatch(defn, profile)


def _target(defn: TargetDef) -> ModuleSpec:
    name = defn.name
    code = TargetModule
    if defn.ftrace_ops or defn.kprobes:

        class DefinedTarget(TargetModule):
            ftrace_ops = defn.ftrace_ops
            kprobes = defn.kprobes

        DefinedTarget.__name__ = f"Target_{name}"
        code = DefinedTarget
    return ModuleSpec(
        name,
        code,
        functions=tuple(
            FunctionSpec(f, seq_puts(f"{name}: {f}: original output")) for f in defn.functions
        ),
        exports=defn.functions,  # EXPORT_SYMBOL_GPL, as the real-kernel generator writes them
        error_injection=defn.error_injection,
        source=defn.source,
    )


def _livepatch(defn: LivepatchDef, profile: Profile) -> ModuleSpec:
    functions = tuple(
        FunctionSpec(
            f.new_name,
            _replacement(f.output if f.output is not None else defn.default_output, f.ret),
        )
        for obj in defn.objects
        for f in obj.funcs
    )
    if defn.params is None:
        params = tuple(
            ParamSpec(field, typ, 0o644, value(defn))
            for field, (typ, value) in _PATCH_PARAMS.items()
            if field in profile.patch_fields
        )
    else:
        params = tuple(_own_param(defn, name, parmtype) for name, parmtype in defn.params)
    fields = {f: getattr(defn, f) for f in PATCH_FIELDS if f in profile.patch_fields}

    class DefinedLivepatch(LivepatchCode):
        def objects(self) -> list[KlpObject]:
            return [
                KlpObject(
                    None if obj.name == "vmlinux" else obj.name,
                    [KlpFunc(f.old_name, self.sym(f.new_name), f.old_sympos) for f in obj.funcs],
                )
                for obj in defn.objects
            ]

        def states(self) -> list[KlpState]:
            return [KlpState(st.id, st.version) for st in defn.states]

    for f, value in fields.items():  # the static klp_patch's initialiser
        setattr(DefinedLivepatch, f, value)
    DefinedLivepatch.__name__ = f"Livepatch_{defn.name}"
    return ModuleSpec(
        defn.name,
        DefinedLivepatch,
        livepatch=True,
        params=params,
        functions=functions,
        error_injection=defn.error_injection,
        source=defn.source,
    )
