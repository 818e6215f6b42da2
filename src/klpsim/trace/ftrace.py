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
"""

from collections.abc import Callable

from klpsim.kernel.errno import EBUSY, EINVAL, ENOENT
from klpsim.kernel.symbols import Regs, Symbol

__all__ = [
    "FtraceOps",
    "Ftrace",
    "FTRACE_OPS_FL_ENABLED",
    "FTRACE_OPS_FL_DYNAMIC",
    "FTRACE_OPS_FL_SAVE_REGS",
    "FTRACE_OPS_FL_IPMODIFY",
    "FTRACE_OPS_FL_PERMANENT",
    "FTRACE_OPS_FL_DIRECT",
]

FTRACE_OPS_FL_ENABLED = 1 << 0
FTRACE_OPS_FL_DYNAMIC = 1 << 1
FTRACE_OPS_FL_SAVE_REGS = 1 << 3
FTRACE_OPS_FL_IPMODIFY = 1 << 11
FTRACE_OPS_FL_PERMANENT = 1 << 16
FTRACE_OPS_FL_DIRECT = 1 << 17

Handler = Callable[..., None]  # func(task, ip: Symbol, ops, regs)


class FtraceOps:
    """A ``struct ftrace_ops``: a handler, flags and a filter hash."""

    __slots__ = ("name", "func", "flags", "filter", "private")

    def __init__(self, name: str, func: Handler, flags: int = 0):
        self.name = name
        self.func = func
        self.flags = flags
        self.filter: list[Symbol] = []  # empty: every traceable function
        self.private = None

    @property
    def enabled(self) -> bool:
        return bool(self.flags & FTRACE_OPS_FL_ENABLED)

    def __repr__(self) -> str:
        return f"<ftrace_ops {self.name}>"


class Ftrace:
    """The ftrace core of one kernel."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.ops_list: list[FtraceOps] = []  # head first
        self.ftrace_enabled = True
        self._sites: dict[Symbol, list[FtraceOps]] = {}
        kernel.fs.create_file(
            "/proc/sys/kernel/ftrace_enabled",
            0o644,
            lambda: f"{int(self.ftrace_enabled)}\n",
            self._sysctl_store,
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
            if ops.enabled and ops.flags & FTRACE_OPS_FL_IPMODIFY:
                pass
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

    def _ipmodify_owner(self, sym: Symbol, exclude: FtraceOps | None = None) -> FtraceOps | None:
        for ops in self._sites.get(sym, ()):
            if ops is not exclude and ops.flags & FTRACE_OPS_FL_IPMODIFY:
                return ops
        return None

    def _functions(self, ops: FtraceOps):
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
        ops.flags |= FTRACE_OPS_FL_ENABLED
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
        return 0

    def _rebuild(self, sym: Symbol) -> None:
        """Recompute which ops a call site runs, in ftrace_ops_list order."""
        attached = [ops for ops in self.ops_list if not ops.filter or sym in ops.filter]
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

        def fentry(task, regs: Regs, _sym=sym, _ops=attached) -> None:
            for ops in tuple(_ops):
                ops.func(task, _sym, ops, regs)

        sym.fentry = fentry

    def ops_on(self, sym: Symbol) -> list[FtraceOps]:
        """The ops a call of *sym* runs, in order."""
        return list(self._sites.get(sym, ()))

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
