"""The one module schema: ``MOD.toml`` parsed once into frozen, typed
definitions.

Two consumers read these types and nothing else: the model's module builder
(modules/definition.py, a definition to a ModuleSpec) and the C generator
for real kernels (real/vm/modgen.py, a definition to C). Every rule about
what a definition may say lives here, once, so that both give the same
verdict on the same file. docs/scenarios.md documents the format.

A definition is portable across kernels: it may set ``replace``,
``replace_set`` and ``replaceable`` together, and each kernel takes the
``struct klp_patch`` fields it has (``Profile.patch_fields`` in the model,
``KernelCapabilities.patch_fields`` in the generator) and ignores the others.

Errors are one line, ``FILE: key 'K': what is wrong``, with control
characters in anything taken from the file escaped.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from klpsim.kernel.module import is_c_identifier, module_name_error
from klpsim.kernel.printk import escape

__all__ = [
    "FuncDef",
    "ObjectDef",
    "StateDef",
    "LivepatchDef",
    "TargetDef",
    "FtraceOpsDef",
    "KprobeDef",
    "ModuleDef",
    "DefinitionError",
    "ERROR_INJECTION_TYPES",
    "FTRACE_OPS_FLAGS",
    "PATCH_FIELDS",
    "parse_definition",
    "load_definition",
]

ERROR_INJECTION_TYPES = ("NULL", "ERRNO", "ERRNO_NULL", "TRUE")
"""include/asm-generic/error-injection.h: EI_ETYPE_NULL ... EI_ETYPE_TRUE."""
FTRACE_OPS_FLAGS = ("SAVE_REGS", "IPMODIFY")
"""The ``FTRACE_OPS_FL_*`` flags a plain module's ftrace_ops may set."""
PATCH_FIELDS = ("replace", "replace_set", "replaceable")
"""The ``struct klp_patch`` fields a definition may set, on any kernel."""

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# kallsyms names: C identifiers plus the compiler's suffixes (foo.isra.0, foo.cold)
_KSYM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")
# C11 keywords, and names the kernel's headers make keywords or types
_C_RESERVED = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local",
    "bool", "true", "false", "NULL",
))  # fmt: skip
RESERVED_PREFIX = "__klpsim_"
"""Names the C generator keeps for itself."""


class DefinitionError(Exception):
    """A definition that cannot be used: one line naming the file and the key."""


@dataclass(frozen=True)
class FuncDef:
    """One ``struct klp_func`` of a livepatch, and its replacement."""

    old_name: str
    """The function to patch, as kallsyms names it (``foo``, ``foo.isra.0``)."""
    new_name: str
    """The replacement's name: a C identifier, unique in the module."""
    old_sympos: int
    """Which of several same-named local symbols (0: the only one)."""
    output: str | None
    """What a seq_file show replacement prints (one line); None: the default."""
    ret: int
    """What the replacement returns (TOML key ``return``; a C int)."""


@dataclass(frozen=True)
class ObjectDef:
    """One ``struct klp_object``: ``vmlinux`` or a module, and its funcs."""

    name: str
    funcs: tuple[FuncDef, ...]


@dataclass(frozen=True)
class StateDef:
    """One ``struct klp_state``."""

    id: int
    version: int


@dataclass(frozen=True)
class LivepatchDef:
    """A livepatch module (``livepatch = true``)."""

    name: str
    source: str
    """The file it came from (for messages)."""
    objects: tuple[ObjectDef, ...]
    states: tuple[StateDef, ...]
    replace: bool
    replace_set: int
    replaceable: bool
    error_injection: tuple[tuple[str, str], ...]
    """ALLOW_ERROR_INJECTION(new_name, TYPE) entries."""
    params: tuple[tuple[str, str], ...] | None = None
    """The module's own parameters, (name, ``.modinfo`` parmtype), for a
    definition read from a ``.ko``; None for a TOML definition, whose
    ``struct klp_patch`` fields become its parameters."""

    @property
    def default_output(self) -> str:
        """What a replacement without ``output`` prints (the test modules' text)."""
        return f"{self.name}: this has been live patched"


@dataclass(frozen=True)
class FtraceOpsDef:
    """One ``[[ftrace_ops]]`` of a plain module: a ``struct ftrace_ops``
    whose filter is set (ftrace_set_filter()) to *funcs*."""

    funcs: tuple[str, ...]
    """The functions it hooks, as kallsyms names them."""
    flags: tuple[str, ...]
    """``FTRACE_OPS_FL_*`` names without the prefix (:data:`FTRACE_OPS_FLAGS`)."""

    @staticmethod
    def callback(index: int) -> str:
        """The C name of ops *index*'s callback: enabled_functions prints it."""
        return f"klpsim_ops{index}_func"


@dataclass(frozen=True)
class KprobeDef:
    """One ``[[kprobes]]`` of a plain module: a ``struct kprobe`` on a
    function's entry."""

    symbol: str
    """``kprobe.symbol_name``, as kallsyms names it."""
    post_handler: bool
    """Whether it has a post_handler (which makes an armed probe IPMODIFY)."""


@dataclass(frozen=True)
class TargetDef:
    """A plain module whose functions a livepatch may patch: each one a
    seq_file show function behind ``/proc/MOD/F``. Its ftrace_ops and
    kprobes, if any, are registered in init and unregistered in exit."""

    name: str
    source: str
    functions: tuple[str, ...]
    error_injection: tuple[tuple[str, str], ...]
    ftrace_ops: tuple[FtraceOpsDef, ...] = ()
    kprobes: tuple[KprobeDef, ...] = ()


ModuleDef = LivepatchDef | TargetDef

_LIVEPATCH_KEYS = ("objects", "states", *PATCH_FIELDS)
_HOOK_KEYS = ("ftrace_ops", "kprobes")
_TARGET_KEYS = ("functions", *_HOOK_KEYS)


class _Reader:
    """Walks one parsed TOML table; every complaint names the key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, what: str) -> NoReturn:
        raise DefinitionError(f"{escape(str(self.path))}: key '{escape(key)}': {what}")

    def keys(self, table: dict[str, object], prefix: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.fail(prefix + key, "unknown key")

    def value(self, key: str, v: object, typ: type, what: str) -> object:
        if isinstance(v, bool) != (typ is bool) or not isinstance(v, typ):
            self.fail(key, f"expected {what}, got {_describe(v)}")
        return v

    def string(self, key: str, v: object) -> str:
        s = self.value(key, v, str, "a string")
        assert isinstance(s, str)
        return s

    def boolean(self, key: str, v: object) -> bool:
        return bool(self.value(key, v, bool, "true or false"))

    def integer(self, key: str, v: object, lo: int, hi: int, what: str) -> int:
        n = self.value(key, v, int, "an integer")
        assert isinstance(n, int)
        if not lo <= n <= hi:
            self.fail(key, f"{n} is out of range for {what} ({lo}..{hi})")
        return n

    def array(self, key: str, v: object) -> list[object]:
        a = self.value(key, v, list, "an array")
        assert isinstance(a, list)
        return a

    def table(self, key: str, v: object) -> dict[str, object]:
        t = self.value(key, v, dict, "a table")
        assert isinstance(t, dict)
        return t

    def tables(
        self, key: str, v: object, allowed: tuple[str, ...]
    ) -> Iterator[tuple[str, dict[str, object]]]:
        """An array of tables, each with only *allowed* keys: (its key, it)."""
        for i, item in enumerate(self.array(key, v)):
            ikey = f"{key}[{i}]"
            table = self.table(ikey, item)
            self.keys(table, ikey + ".", allowed)
            yield ikey, table

    def symbol(self, key: str, v: object) -> str:
        """A function as kallsyms names it (``foo``, ``foo.isra.0``)."""
        s = self.string(key, v)
        if not s or not _KSYM_CHARS.issuperset(s):
            self.fail(key, f"'{escape(s)}' is not a symbol name (letters, digits, '_' and '.')")
        return s

    def identifier(self, key: str, v: object, what: str) -> str:
        s = self.string(key, v)
        if not is_c_identifier(s):
            self.fail(key, f"'{escape(s)}' is not {what} (a C identifier)")
        if s in _C_RESERVED:
            self.fail(key, f"'{s}' is a C keyword")
        if s.startswith(RESERVED_PREFIX):
            self.fail(key, f"names starting with '{RESERVED_PREFIX}' are klpsim's own")
        return s


def _describe(v: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}  # fmt: skip
    kind = kinds.get(type(v), "a date or time")
    if isinstance(v, str | int | float | bool):
        text = repr(v) if not isinstance(v, bool) else str(v).lower()
        if len(text) > 40:
            text = text[:37] + "..."
        return f"{kind} {escape(text)}"
    return kind


def parse_definition(text: str, path: Path) -> ModuleDef:
    """The definition TOML *text* (read from *path*) gives; DefinitionError if none."""
    name = path.stem.replace("-", "_")
    r = _Reader(path)
    why = module_name_error(name)
    if why is not None:
        raise DefinitionError(f"{escape(str(path))}: the file name gives no module name: {why}")
    import tomllib  # only when a definition is read: klpsim starts faster

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DefinitionError(f"{escape(str(path))}: invalid TOML: {escape(str(e))}") from None
    livepatch = r.boolean("livepatch", data.get("livepatch", False))
    if livepatch:
        return _livepatch(r, name, data)
    return _target(r, name, data)


def load_definition(path: Path) -> ModuleDef:
    """Read *path* and parse it."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DefinitionError(f"{escape(str(path))}: {e.strerror}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise DefinitionError(f"{escape(str(path))}: not a UTF-8 text file") from None
    return parse_definition(text, path)


def _target(r: _Reader, name: str, data: dict[str, object]) -> TargetDef:
    for key in data:
        if key in _LIVEPATCH_KEYS:
            r.fail(key, f"only livepatch modules have {key} (add 'livepatch = true')")
    r.keys(data, "", ("livepatch", "functions", "error_injection", *_HOOK_KEYS))
    hooks = any(key in data for key in _HOOK_KEYS)
    if "functions" not in data and not hooks:
        r.fail(
            "functions",
            "missing: a plain module lists its functions (a livepatch says 'livepatch = true')",
        )
    funcs = r.array("functions", data.get("functions", []))
    if not funcs and not hooks:
        r.fail("functions", "a plain module needs at least one function")
    names: list[str] = []
    for i, f in enumerate(funcs):
        key = f"functions[{i}]"
        fn = r.identifier(key, f, "a function name")
        if fn in names:
            r.fail(key, f"'{fn}' is listed twice")
        if fn in (f"{name}_init", f"{name}_exit"):
            r.fail(key, f"'{fn}' is the module's own init or exit function")
        names.append(fn)
    ei = _error_injection(r, data, names)
    ops = _ftrace_ops(r, data)
    for i, fn in enumerate(names):
        for j in range(len(ops)):
            if fn == FtraceOpsDef.callback(j):
                r.fail(f"functions[{i}]", f"'{fn}' is the name of ftrace_ops[{j}]'s callback")
    return TargetDef(name, str(r.path), tuple(names), ei, ops, _kprobes(r, data))


def _ftrace_ops(r: _Reader, data: dict[str, object]) -> tuple[FtraceOpsDef, ...]:
    out: list[FtraceOpsDef] = []
    for okey, t in r.tables("ftrace_ops", data.get("ftrace_ops", []), ("funcs", "flags")):
        if "funcs" not in t:
            r.fail(okey + ".funcs", "missing: the functions the ops hooks")
        funcs = r.array(okey + ".funcs", t["funcs"])
        if not funcs:
            r.fail(okey + ".funcs", "an ftrace_ops needs at least one function")
        names: list[str] = []
        for j, f in enumerate(funcs):
            fn = r.symbol(f"{okey}.funcs[{j}]", f)
            if fn in names:
                r.fail(f"{okey}.funcs[{j}]", f"'{fn}' is listed twice")
            names.append(fn)
        flags: list[str] = []
        for j, f in enumerate(r.array(okey + ".flags", t.get("flags", []))):
            flag = r.string(f"{okey}.flags[{j}]", f)
            if flag not in FTRACE_OPS_FLAGS:
                r.fail(f"{okey}.flags[{j}]", f"must be one of {', '.join(FTRACE_OPS_FLAGS)}")
            if flag in flags:
                r.fail(f"{okey}.flags[{j}]", f"'{flag}' is listed twice")
            flags.append(flag)
        out.append(FtraceOpsDef(tuple(names), tuple(flags)))
    return tuple(out)


def _kprobes(r: _Reader, data: dict[str, object]) -> tuple[KprobeDef, ...]:
    out: list[KprobeDef] = []
    for kkey, t in r.tables("kprobes", data.get("kprobes", []), ("symbol", "post_handler")):
        if "symbol" not in t:
            r.fail(kkey + ".symbol", "missing: the function to probe")
        symbol = r.symbol(kkey + ".symbol", t["symbol"])
        post = r.boolean(kkey + ".post_handler", t.get("post_handler", False))
        out.append(KprobeDef(symbol, post))
    return tuple(out)


def _livepatch(r: _Reader, name: str, data: dict[str, object]) -> LivepatchDef:
    for key in data:
        if key in _HOOK_KEYS:
            r.fail(key, f"only plain modules have {key}")
        if key in _TARGET_KEYS:
            r.fail(key, f"only plain modules have {key} (a livepatch lists objects)")
    r.keys(data, "", ("livepatch", "error_injection", *_LIVEPATCH_KEYS))
    replace = r.boolean("replace", data.get("replace", False))
    replace_set = r.integer("replace_set", data.get("replace_set", 0), 0, U32_MAX, "a u32")
    replaceable = r.boolean("replaceable", data.get("replaceable", False))
    objects: list[ObjectDef] = []
    new_names: dict[str, str] = {}  # new_name -> its key
    for okey, obj in r.tables("objects", data.get("objects", []), ("name", "funcs")):
        if "name" not in obj:
            r.fail(okey + ".name", "missing: 'vmlinux' or a module's name")
        oname = r.string(okey + ".name", obj["name"])
        if oname != "vmlinux":
            why = module_name_error(oname)
            if why is not None:
                r.fail(okey + ".name", why)
        if any(prev.name == oname for prev in objects):
            r.fail(okey + ".name", f"object '{oname}' is listed twice")
        funcs: list[FuncDef] = []
        for fkey, f in r.tables(okey + ".funcs", obj.get("funcs", []), _FUNC_KEYS):
            func = _func(r, fkey, f)
            if any((p.old_name, p.old_sympos) == (func.old_name, func.old_sympos) for p in funcs):
                r.fail(
                    fkey + ".old_name",
                    f"'{escape(func.old_name)}' (old_sympos {func.old_sympos}) is listed twice",
                )
            if func.new_name in new_names:
                r.fail(
                    fkey + ".new_name",
                    f"'{func.new_name}' is already the new_name of {new_names[func.new_name]}",
                )
            new_names[func.new_name] = fkey
            funcs.append(func)
        objects.append(ObjectDef(oname, tuple(funcs)))
    states: list[StateDef] = []
    for skey, table in r.tables("states", data.get("states", []), ("id", "version")):
        if "id" not in table:
            r.fail(skey + ".id", "missing")
        # id 0 ends the kernel's zero-terminated states array
        sid = r.integer(skey + ".id", table["id"], 1, U64_MAX, "a state id")
        version = r.integer(skey + ".version", table.get("version", 0), 0, U32_MAX, "a u32")
        states.append(StateDef(sid, version))
    ei = _error_injection(r, data, list(new_names))
    return LivepatchDef(
        name, str(r.path), tuple(objects), tuple(states), replace, replace_set, replaceable, ei
    )


_FUNC_KEYS = ("old_name", "new_name", "old_sympos", "output", "return")


def _func(r: _Reader, key: str, f: dict[str, object]) -> FuncDef:
    if "old_name" not in f:
        r.fail(key + ".old_name", "missing")
    old = r.symbol(key + ".old_name", f["old_name"])
    default_new = "livepatch_" + old.replace(".", "_")
    new = r.identifier(key + ".new_name", f.get("new_name", default_new), "a function name")
    sympos = r.integer(key + ".old_sympos", f.get("old_sympos", 0), 0, U64_MAX, "an unsigned long")
    output = None
    if "output" in f:
        output = r.string(key + ".output", f["output"])
        if not output.isprintable():
            r.fail(key + ".output", f"'{escape(output)}' is not one line of printable text")
    ret = r.integer(key + ".return", f.get("return", 0), INT_MIN, INT_MAX, "a C int")
    return FuncDef(old, new, sympos, output, ret)


def _error_injection(
    r: _Reader, data: dict[str, object], funcs: list[str]
) -> tuple[tuple[str, str], ...]:
    entries = r.table("error_injection", data.get("error_injection", {}))
    out: list[tuple[str, str]] = []
    for func, etype in entries.items():
        key = f"error_injection.{func}"
        t = r.string(key, etype)
        if t not in ERROR_INJECTION_TYPES:
            r.fail(key, f"type must be one of {', '.join(ERROR_INJECTION_TYPES)}")
        if func not in funcs:
            r.fail(key, "not a function of this module")
        out.append((func, t))
    return tuple(out)
