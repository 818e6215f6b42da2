"""Functions, object files and kallsyms.

An :class:`ObjectFile` is vmlinux or one module's text: its functions in
kallsyms order, with addresses and sizes. Static functions may share a name
inside one object; ``old_sympos`` then picks the N-th one, counting in
kallsyms order, as klp_find_object_symbol() does.

An object may take its names from a real symbol table (a
:class:`SymbolSource`, ``klpsim run --kallsyms``): a name then has exactly
the symbols the table lists, in its order. The model's own functions of
that name (the ones with a Python body) stand for the first of them; the
rest are made when a name is first looked up, so a 300k-symbol table costs
nothing until it is used. The model's own functions the table lacks stay
on task stacks and behind /proc files, but no lookup by name finds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from klpsim.kernel.tasks import Task

__all__ = [
    "Symbol",
    "ObjectFile",
    "Kallsyms",
    "Regs",
    "FuncBody",
    "Fentry",
    "SymbolSource",
    "VMLINUX_BASE",
    "MODULES_BASE",
]

VMLINUX_BASE = 0xFFFFFFFF81000000
MODULES_BASE = 0xFFFFFFFFC0000000
FUNC_ALIGN = 0x40

FuncBody = Callable[..., int]
"""A function body, ``impl(ctx, *args)``: *ctx* is a machine.CallContext, the
arguments are the function's own (as a C prototype varies, so do they); the
result is what the caller gets in rax."""
Fentry = Callable[["Task", "Regs"], None]
"""What an enabled ``call __fentry__`` runs: ftrace's dispatch for the site."""


class SymbolSource(Protocol):
    """A real symbol table the simulated objects take their names from
    (artifacts/kallsyms.py's SymbolTable is one)."""

    def modules(self) -> tuple[str, ...]:
        """The modules it lists, in its order."""
        ...

    def find(self, name: str, module: str | None) -> Sequence[tuple[int, bool]]:
        """Each symbol *name* of *module* (None: vmlinux), in table order:
        (address or 0, whether it is text)."""
        ...


def _returns_0(ctx: object, *args: object) -> int:
    return 0


class Symbol:
    """One function: name, address, size and its Python body.

    ``impl(ctx, *args)`` is the function body; ``fentry`` is what the
    ``call __fentry__`` at its first instruction does once ftrace has
    enabled that call site (None while it is a nop). A ``notrace``
    function has no call site at all (ftrace_location() is 0).
    """

    __slots__ = ("name", "owner", "addr", "size", "impl", "notrace", "fentry", "meta")

    def __init__(
        self,
        name: str,
        owner: ObjectFile,
        addr: int,
        size: int,
        impl: FuncBody | None = None,
        notrace: bool = False,
    ):
        self.name = name
        self.owner = owner
        self.addr = addr
        self.size = size
        self.impl = impl
        self.notrace = notrace
        self.fentry: Fentry | None = None
        self.meta: dict[str, object] = {}

    @property
    def ftrace_loc(self) -> int:
        """ftrace_location(): the patchable call site, 0 for notrace code."""
        return 0 if self.notrace else self.addr

    def __repr__(self) -> str:
        return f"<{self.owner.name}:{self.name}>"


class ObjectFile:
    """vmlinux or a module: its functions in kallsyms order."""

    def __init__(self, name: str, base: int, source: SymbolSource | None = None):
        self.name = name
        self.base = base
        self.end = base
        self.symbols: list[Symbol] = []
        self.by_name: dict[str, list[Symbol]] = {}
        """The model's own functions, by name."""
        self.source = source
        """A real symbol table this object's names come from (None: its own)."""
        self._real: dict[str, list[Symbol]] = {}

    def add(
        self, name: str, impl: FuncBody | None = None, size: int = FUNC_ALIGN, notrace: bool = False
    ) -> Symbol:
        sym = Symbol(name, self, self.end, size, impl, notrace)
        self.end += (size + FUNC_ALIGN - 1) // FUNC_ALIGN * FUNC_ALIGN
        self.symbols.append(sym)
        self.by_name.setdefault(name, []).append(sym)
        return sym

    def find(self, name: str) -> list[Symbol]:
        """Every symbol *name*, in kallsyms order."""
        if self.source is None:
            return self.by_name.get(name, [])
        syms = self._real.get(name)
        if syms is None:
            own = self.by_name.get(name, [])
            module = None if self.name == "vmlinux" else self.name
            syms = []
            for i, (addr, text) in enumerate(self.source.find(name, module)):
                if i < len(own):
                    syms.append(own[i])
                    continue
                if not addr:  # read without root: lay it out after the model's own
                    addr = self.end
                    self.end += FUNC_ALIGN
                # a data symbol has no __fentry__ call site
                syms.append(Symbol(name, self, addr, FUNC_ALIGN, _returns_0, notrace=not text))
            self._real[name] = syms
        return syms

    def lookup(self, name: str) -> Symbol | None:
        """The unique (or first) function of that name."""
        syms = self.find(name)
        return syms[0] if syms else None

    def builtin(self, name: str) -> Symbol | None:
        """The model's own function *name*, whatever the symbol table says."""
        syms = self.by_name.get(name)
        return syms[0] if syms else None


class Kallsyms:
    """All loaded object files: vmlinux first, then modules in load order."""

    def __init__(self) -> None:
        self.objects: dict[str, ObjectFile] = {}
        self._next_module_base = MODULES_BASE

    def add_object(self, obj: ObjectFile) -> None:
        self.objects[obj.name] = obj

    def new_module_object(self, name: str) -> ObjectFile:
        obj = ObjectFile(name, self._next_module_base)
        self._next_module_base += 0x10000
        return obj

    def remove_object(self, name: str) -> None:
        self.objects.pop(name, None)

    def find(self, objname: str | None, name: str) -> list[Symbol]:
        """Every function called *name* in *objname* (None: vmlinux)."""
        obj = self.objects.get(objname or "vmlinux")
        return list(obj.find(name)) if obj else []

    def lookup_name(self, name: str) -> Symbol | None:
        """kallsyms_lookup_name(): the first match in any object."""
        for obj in self.objects.values():
            sym = obj.lookup(name)
            if sym is not None:
                return sym
        return None

    def lines(self, vmlinux_data: Sequence[str] = ()) -> list[str]:
        """/proc/kallsyms as root reads it: vmlinux's symbols (its functions,
        then *vmlinux_data*), then each module's (kallsyms_show() walks the
        core table before module_kallsyms)."""
        out: list[str] = []
        for obj in self.objects.values():
            suffix = "" if obj.name == "vmlinux" else f"\t[{obj.name}]"
            out.extend(f"{s.addr:016x} t {s.name}{suffix}" for s in obj.symbols)
            if obj.name == "vmlinux":
                out.extend(vmlinux_data)
        return out


class Regs:
    """The part of ``struct ftrace_regs`` / ``pt_regs`` the model needs."""

    __slots__ = ("ip", "ret", "overridden", "args")

    def __init__(self, ip: Symbol, args: tuple[object, ...]):
        self.ip = ip
        self.ret = 0  # regs->ax: what the call returns when ``overridden``
        self.overridden = False
        self.args = args
