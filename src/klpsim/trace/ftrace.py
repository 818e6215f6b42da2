"""ftrace: ops, filters, call-site dispatch and the ftrace_enabled sysctl.

Mirrors the parts of kernel/trace/ftrace.c that a livepatch meets:

* register_ftrace_function() refuses a PERMANENT ops while
  ``kernel.ftrace_enabled`` is 0 (-EBUSY), and the sysctl refuses 0 while a
  PERMANENT ops is registered;
* __ftrace_hash_update_ipmodify(): at most one IPMODIFY ops per function
  (-EBUSY for the second);
* ops are added at the head of ftrace_ops_list, and a call site shared by
  several ops runs them in list order (ftrace_ops_list_func), newest first.
  A handler that changes regs->ip redirects the call; the last one to
  write it wins.
* a DIRECT ops (a BPF trampoline, register_ftrace_direct()) is not a list
  handler: its trampoline runs after every list handler of the call site
  (ftrace_regs_caller jumps to it last), at most one per function (-EBUSY).
  A DIRECT and an IPMODIFY ops may share a function only through the
  direct ops' ``ops_func`` (6.0, 53cd885bc5c3 "ftrace: Allow IPMODIFY and
  DIRECT ops on the same function"): ENABLE_SHARE_IPMODIFY_SELF when the
  direct ops comes second, ENABLE_SHARE_IPMODIFY_PEER when the IPMODIFY
  ops does, DISABLE_SHARE_IPMODIFY_PEER when the IPMODIFY ops leaves.

``/sys/kernel/tracing/enabled_functions`` (t_show() with
FTRACE_ITER_ENABLED) lists every record an ops covers, in address order:
``name [mod] (count)`` and the record's flag columns, then, when a single
ops owns the record, the x86 trampoline made for that ops and the function
it calls (``\ttramp: ADDR (FUNC+0x0/SIZE) ->FUNC+0x0/SIZE``), else the list
function that walks every ops (`` ->arch_ftrace_ops_list_func+0x0/SIZE``).
The columns are `` R`` (FTRACE_FL_REGS), `` I`` (IPMODIFY), `` D`` (DIRECT)
and, since 6.3, `` O`` (FTRACE_FL_CALL_OPS, cbad0fb2d8d9 "ftrace: Add
DYNAMIC_FTRACE_WITH_CALL_OPS"; never set on x86) and, since 6.4, `` M ``
(FTRACE_FL_MODIFIED, sticky once an IPMODIFY or DIRECT ops was there,
6ce2c04fcbca "ftrace: Add MODIFIED flag to show if IPMODIFY or direct was
attached"); an unset column is blank. Trampoline addresses and function
sizes are the model's own (sizes as Debian's 6.12 build has them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from klpsim.kernel.errno import EBUSY, EINVAL, ENOENT

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.symbols import Regs, Symbol
    from klpsim.kernel.tasks import Task

__all__ = [
    "FtraceOps",
    "Ftrace",
    "Handler",
    "OpsFunc",
    "HANDLER_SIZES",
    "FTRACE_OPS_FL_ENABLED",
    "FTRACE_OPS_FL_DYNAMIC",
    "FTRACE_OPS_FL_SAVE_REGS",
    "FTRACE_OPS_FL_IPMODIFY",
    "FTRACE_OPS_FL_PERMANENT",
    "FTRACE_OPS_FL_DIRECT",
    "FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF",
    "FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER",
    "FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER",
]

FTRACE_OPS_FL_ENABLED = 1 << 0
FTRACE_OPS_FL_DYNAMIC = 1 << 1
FTRACE_OPS_FL_SAVE_REGS = 1 << 3
FTRACE_OPS_FL_IPMODIFY = 1 << 11
FTRACE_OPS_FL_PERMANENT = 1 << 16
FTRACE_OPS_FL_DIRECT = 1 << 17

# enum ftrace_ops_cmd
FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF = 0
FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER = 1
FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER = 2

# Sizes of the handlers enabled_functions names (%pS), as Debian's 6.12 has them.
HANDLER_SIZES = {
    "kprobe_ftrace_handler": 0x1D0,
    "klp_ftrace_handler": 0x100,
    "ftrace_graph_func": 0x20,
    "function_trace_call": 0x140,
    "arch_ftrace_ops_list_func": 0x1D0,
    "ftrace_ops_list_func": 0x1D0,
    "ftrace_ops_assist_func": 0x130,
}
TRAMP_BASE = 0xFFFFFFFFC1000000  # where the model puts x86's per-ops trampolines

Handler = Callable[["Task", "Symbol", "FtraceOps", "Regs"], None]
"""``ftrace_func_t``: func(task, ip, ops, regs); a DIRECT ops' trampoline too."""
OpsFunc = Callable[["FtraceOps", "Symbol", int], int]
"""``ftrace_ops_func_t``: ops_func(ops, ip, enum ftrace_ops_cmd) -> 0 or -errno."""


class FtraceOps:
    """A ``struct ftrace_ops``: a handler, flags and a filter hash."""

    __slots__ = (
        "name",
        "func",
        "flags",
        "filter",
        "private",
        "ops_func",
        "direct_call",
        "func_name",
        "func_mod",
        "func_size",
        "trampoline",
        "tramp_addr",
    )

    def __init__(self, name: str, func: Handler, flags: int = 0):
        self.name = name
        self.func = func
        self.flags = flags
        self.filter: list[Symbol] = []  # empty: every traceable function
        self.private: object = None  # the owner's data, as the kernel's void *
        self.ops_func: OpsFunc | None = None
        self.direct_call: Handler | None = None  # a DIRECT ops' trampoline
        # The C name of ops->func, as %pS prints it: the model's handlers
        # carry the kernel's function names.
        self.func_name: str = getattr(func, "__name__", name)
        self.func_mod: str | None = None  # the module ops->func lives in
        self.func_size = 0  # 0: HANDLER_SIZES or the default
        self.trampoline = not flags & FTRACE_OPS_FL_DIRECT  # x86 makes one per ops
        self.tramp_addr = 0  # allocated on first registration

    @property
    def enabled(self) -> bool:
        return bool(self.flags & FTRACE_OPS_FL_ENABLED)

    def __repr__(self) -> str:
        return f"<ftrace_ops {self.name}>"


class Ftrace:
    """The ftrace core of one kernel."""

    def __init__(self, kernel: Kernel, rec_flags: str = "RIDOM", list_func: str = ""):
        self.kernel = kernel
        self.ops_list: list[FtraceOps] = []  # head first
        self.ftrace_enabled = True
        self._sites: dict[Symbol, list[FtraceOps]] = {}
        self._modified: set[Symbol] = set()  # FTRACE_FL_MODIFIED, sticky
        self.rec_flags = rec_flags  # the flag columns enabled_functions has
        self.list_func = list_func or "arch_ftrace_ops_list_func"
        self._next_tramp = TRAMP_BASE
        kernel.fs.create_file(
            "/proc/sys/kernel/ftrace_enabled",
            0o644,
            lambda: f"{int(self.ftrace_enabled)}\n",
            self._sysctl_store,
        )
        kernel.fs.create_file(
            "/sys/kernel/tracing/enabled_functions", 0o444, self.show_enabled_functions
        )
        kernel.exports["ftrace"] = self

    # -- filters -------------------------------------------------------------

    def ftrace_set_filter_ip(
        self, ops: FtraceOps, sym: Symbol, remove: bool = False, reset: bool = False
    ) -> int:
        """Add (or remove) one function to an ops' filter hash."""
        if not sym.ftrace_loc:
            return -ENOENT
        if reset:
            ops.filter.clear()
        if remove:
            if sym not in ops.filter:
                return -ENOENT
            ops.filter.remove(sym)
        else:
            if sym in ops.filter:
                return 0
            if ops.enabled and ops.flags & FTRACE_OPS_FL_IPMODIFY and self._ipmodify_owner(sym):
                return -EBUSY
            ops.filter.append(sym)
        if ops.enabled:
            self._rebuild(sym)
        return 0

    def ftrace_set_filter(self, ops: FtraceOps, syms: list[Symbol]) -> int:
        """ftrace_regex_release() / ftrace_hash_move_and_update_ops(): replace
        the whole filter; a registered ops keeps its place in the list."""
        ipmodify = ops.enabled and ops.flags & FTRACE_OPS_FL_IPMODIFY
        if ipmodify and any(self._ipmodify_owner(sym, exclude=ops) for sym in syms):
            return -EBUSY
        old = self._functions(ops) if ops.enabled else []
        ops.filter = list(syms)
        if ops.enabled:
            for sym in dict.fromkeys(old + self._functions(ops)):
                self._rebuild(sym)
        return 0

    def _ipmodify_owner(self, sym: Symbol, exclude: FtraceOps | None = None) -> FtraceOps | None:
        for ops in self._sites.get(sym, ()):
            if ops is not exclude and ops.flags & FTRACE_OPS_FL_IPMODIFY:
                return ops
        return None

    def _direct_owner(self, sym: Symbol) -> FtraceOps | None:
        for ops in self._sites.get(sym, ()):
            if ops.flags & FTRACE_OPS_FL_DIRECT:
                return ops
        return None

    def _share_with_direct(self, ops: FtraceOps) -> int:
        """prepare_direct_functions_for_ipmodify(): an IPMODIFY ops arrives
        where a direct ops is: ask the direct ops to share (…_PEER)."""
        if not ops.flags & FTRACE_OPS_FL_IPMODIFY or ops.flags & FTRACE_OPS_FL_DIRECT:
            return 0
        for sym in ops.filter:
            direct = self._direct_owner(sym)
            if direct is None:
                continue
            if direct.ops_func is None:
                return -EBUSY
            ret = direct.ops_func(direct, sym, FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER)
            if ret:
                return ret
        return 0

    def _functions(self, ops: FtraceOps) -> list[Symbol]:
        if ops.filter:
            return list(ops.filter)
        return [
            s for obj in self.kernel.kallsyms.objects.values() for s in obj.symbols if s.ftrace_loc
        ]

    # -- registration ----------------------------------------------------------

    def register_ftrace_function(self, ops: FtraceOps) -> int:
        if ops.enabled:
            return -EBUSY
        if not self.ftrace_enabled and ops.flags & FTRACE_OPS_FL_PERMANENT:
            return -EBUSY
        if ops.flags & FTRACE_OPS_FL_IPMODIFY:
            if not ops.filter:
                return -EINVAL
            for sym in ops.filter:
                if self._ipmodify_owner(sym):
                    return -EBUSY
            ret = self._share_with_direct(ops)
            if ret:
                return ret
        if ops.flags & FTRACE_OPS_FL_DIRECT:
            # register_ftrace_direct(): one direct call per function;
            # __ftrace_hash_update_ipmodify(): a direct ops meeting an
            # IPMODIFY one must agree to share (…_SELF) or it is -EBUSY.
            for sym in ops.filter:
                if self._direct_owner(sym):
                    return -EBUSY
                if self._ipmodify_owner(sym):
                    if ops.ops_func is None:
                        return -EBUSY
                    ret = ops.ops_func(ops, sym, FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF)
                    if ret:
                        return ret
        ops.flags |= FTRACE_OPS_FL_ENABLED
        if ops.trampoline and not ops.tramp_addr:
            ops.tramp_addr = self._next_tramp  # arch_ftrace_update_trampoline()
            self._next_tramp += 0x1000
        self.ops_list.insert(0, ops)
        for sym in self._functions(ops):
            self._rebuild(sym)
        return 0

    def unregister_ftrace_function(self, ops: FtraceOps) -> int:
        if not ops.enabled:
            return -EINVAL
        ops.flags &= ~FTRACE_OPS_FL_ENABLED
        self.ops_list.remove(ops)
        for sym in self._functions(ops):
            self._rebuild(sym)
        if ops.flags & FTRACE_OPS_FL_IPMODIFY and not ops.flags & FTRACE_OPS_FL_DIRECT:
            # cleanup_direct_functions_after_ipmodify(); errors are ignored
            for sym in ops.filter:
                direct = self._direct_owner(sym)
                if direct is not None and direct.ops_func is not None:
                    direct.ops_func(direct, sym, FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER)
        return 0

    def _rebuild(self, sym: Symbol) -> None:
        """Recompute which ops a call site runs, in ftrace_ops_list order."""
        attached = [ops for ops in self.ops_list if not ops.filter or sym in ops.filter]
        if any(ops.flags & (FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_DIRECT) for ops in attached):
            self._modified.add(sym)
        if attached:
            self._sites[sym] = attached
        else:
            self._sites.pop(sym, None)
        self._arm(sym)

    def _arm(self, sym: Symbol) -> None:
        attached = self._sites.get(sym)
        if not attached or not self.ftrace_enabled:
            sym.fentry = None
            return

        listed = tuple(ops for ops in attached if not ops.flags & FTRACE_OPS_FL_DIRECT)
        direct = tuple(ops for ops in attached if ops.flags & FTRACE_OPS_FL_DIRECT)

        def fentry(
            task: Task,
            regs: Regs,
            _sym: Symbol = sym,
            _ops: tuple[FtraceOps, ...] = listed,
            _direct: tuple[FtraceOps, ...] = direct,
        ) -> None:
            for ops in _ops:
                ops.func(task, _sym, ops, regs)
            for ops in _direct:  # the trampoline runs after the list handlers
                trampoline = ops.direct_call
                if trampoline is not None:
                    trampoline(task, _sym, ops, regs)

        sym.fentry = fentry

    def ops_on(self, sym: Symbol) -> list[FtraceOps]:
        """The ops a call of *sym* runs, in order."""
        return list(self._sites.get(sym, ()))

    def site_state(self, sym: Symbol) -> str:
        """``<count>:<flags>`` of *sym*'s record in enabled_functions, as
        lpc26-livepatch's ftrace_site_state() reads it: R (SAVE_REGS user),
        I (IPMODIFY), D (DIRECT), M (sticky once I or D was there); ``0:-``
        when no ops covers it."""
        attached = self._sites.get(sym, ())
        if not attached:
            return "0:-"
        flags = "R" if any(o.flags & FTRACE_OPS_FL_SAVE_REGS for o in attached) else ""
        flags += "I" if any(o.flags & FTRACE_OPS_FL_IPMODIFY for o in attached) else ""
        flags += "D" if any(o.flags & FTRACE_OPS_FL_DIRECT for o in attached) else ""
        flags += "M" if sym in self._modified else ""
        return f"{len(attached)}:{flags or 'none'}"

    @staticmethod
    def _ps(func: str, size: int = 0, mod: str | None = None) -> str:
        """%pS of a function's start."""
        size = size or HANDLER_SIZES.get(func, 0x40)
        return f"{func}+0x0/{size:#x}" + (f" [{mod}]" if mod else "")

    def enabled_function_line(self, sym: Symbol) -> str | None:
        """One line of enabled_functions (t_show()), or None if no ops covers *sym*."""
        attached = self._sites.get(sym)
        if not attached:
            return None
        cols = {
            "R": any(o.flags & FTRACE_OPS_FL_SAVE_REGS for o in attached),
            "I": any(o.flags & FTRACE_OPS_FL_IPMODIFY for o in attached),
            "D": any(o.flags & FTRACE_OPS_FL_DIRECT for o in attached),
            "O": False,  # FTRACE_FL_CALL_OPS: arm64 only
        }
        name = sym.name if sym.owner.name == "vmlinux" else f"{sym.name} [{sym.owner.name}]"
        out = f"{name} ({len(attached)})"
        for col in self.rec_flags:
            if col == "M":
                out += " M " if sym in self._modified else "   "
            else:
                out += f" {col}" if cols[col] else "  "
        direct = [o for o in attached if o.flags & FTRACE_OPS_FL_DIRECT]
        if len(attached) == 1 and attached[0].tramp_addr:
            ops = attached[0]
            func = self._ps(ops.func_name, ops.func_size, ops.func_mod)
            out += f"\ttramp: {ops.tramp_addr:#x} ({func}) ->{func}"
        elif not direct:
            out += f" ->{self._ps(self.list_func)}"
        for ops in direct:
            out += f"\n\tdirect-->{ops.func_name}"
        return out

    def show_enabled_functions(self) -> str:
        """/sys/kernel/tracing/enabled_functions: records in address order."""
        lines = []
        # Functions of a real symbol table (ObjectFile.find()) are not in
        # obj.symbols: the ones with a call site in use are in _sites.
        extra: dict[str, list[Symbol]] = {}
        for sym in self._sites:
            extra.setdefault(sym.owner.name, []).append(sym)
        for obj in self.kernel.kallsyms.objects.values():
            syms = obj.symbols
            if obj.name in extra:
                own = set(map(id, syms))
                more = [x for x in extra[obj.name] if id(x) not in own]
                syms = sorted([*syms, *more], key=lambda x: x.addr)
            for sym in syms:
                line = self.enabled_function_line(sym)
                if line is not None:
                    lines.append(line + "\n")
        return "".join(lines)

    def release_module(self, objname: str) -> None:
        """ftrace_release_mod(): forget a module's call sites."""
        for sym in [s for s in self._sites if s.owner.name == objname]:
            for ops in self._sites[sym]:
                if sym in ops.filter:
                    ops.filter.remove(sym)
            del self._sites[sym]
            sym.fentry = None

    # -- sysctl kernel.ftrace_enabled -------------------------------------------

    def _sysctl_store(self, text: str) -> int:
        value = text.strip()
        if value not in ("0", "1"):
            return -EINVAL
        enable = value == "1"
        if not enable and any(o.flags & FTRACE_OPS_FL_PERMANENT for o in self.ops_list):
            return -EBUSY
        if enable != self.ftrace_enabled:
            self.ftrace_enabled = enable
            for sym in list(self._sites):
                self._arm(sym)
        return len(text)
