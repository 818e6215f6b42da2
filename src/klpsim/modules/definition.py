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
* a plain module's functions are show functions behind ``/proc/MOD/F``.
"""

from collections.abc import Callable
from typing import Any

from klpsim.kernel.machine import CallContext
from klpsim.kernel.module import FunctionSpec, ModuleCode, ModuleSpec
from klpsim.kernel.params import ParamSpec, ParamType, param_type
from klpsim.kernel.symbols import Symbol
from klpsim.livepatch.profiles import Profile
from klpsim.livepatch.structs import KlpFunc, KlpObject, KlpState
from klpsim.model.schema import PATCH_FIELDS, LivepatchDef, ModuleDef, TargetDef
from klpsim.modules.base import LivepatchCode, seq_puts

__all__ = ["build_module", "TargetModule"]

# module_param() of each struct klp_patch field: (type, value from the definition)
_PATCH_PARAMS: dict[str, tuple[ParamType, Callable[[LivepatchDef], int]]] = {
    "replace": ("int", lambda d: int(d.replace)),
    "replace_set": ("uint", lambda d: d.replace_set),
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


class TargetModule(ModuleCode):
    """A plain module: each function is a noinline show function behind
    /proc/MOD/F reading ``MOD: F: original output``; init and exit log
    ``MOD: MOD_init`` and ``MOD: MOD_exit``."""

    def init(self) -> int:
        self.pr_info(f"{self.mod.name}_init")
        kernel = self.kernel
        for sym in self.mod.text.symbols:

            def read(sym: Symbol = sym) -> str:
                seq: list[str] = []
                kernel.call(kernel.sched.current, sym, seq)
                return "".join(seq)

            kernel.fs.create_file(f"/proc/{self.mod.name}/{sym.name}", 0o444, read)
        return 0

    def exit(self) -> None:
        self.kernel.fs.remove(f"/proc/{self.mod.name}")
        self.pr_info(f"{self.mod.name}_exit")


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
    return ParamSpec(name, typ, 0o644, default)


def build_module(defn: ModuleDef, profile: Profile) -> ModuleSpec:
    """The module *defn* defines, as *profile*'s kernel loads it."""
    if isinstance(defn, TargetDef):
        return _target(defn)
    return _livepatch(defn, profile)


def _target(defn: TargetDef) -> ModuleSpec:
    name = defn.name
    return ModuleSpec(
        name,
        TargetModule,
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
