"""kprobes on function entry, armed through ftrace (CONFIG_KPROBES_ON_FTRACE).

Two ftrace_ops carry every ftrace-based kprobe: ``kprobe_ftrace_ops``
(SAVE_REGS) and ``kprobe_ipmodify_ops`` (SAVE_REGS | IPMODIFY).
arm_kprobe_ftrace() uses the IPMODIFY one iff the probe has a
post_handler, since single-stepping changes the IP. So a post_handler
kprobe and a livepatch exclude each other on one function (-EBUSY for the
second), and a kprobe without one coexists with a livepatch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from klpsim.kernel.errno import EINVAL, ENOENT
from klpsim.kernel.module import MODULE_STATE_GOING
from klpsim.trace.ftrace import FTRACE_OPS_FL_IPMODIFY, FTRACE_OPS_FL_SAVE_REGS, FtraceOps

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Regs, Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.trace.ftrace import Ftrace

__all__ = ["Kprobe", "Kprobes", "PreHandler", "PostHandler"]

PreHandler = Callable[["Kprobe", "Regs", "Task"], int]
"""``kprobe_pre_handler_t``: nonzero when it changed regs->ip (no single-step
and no post_handler then)."""
PostHandler = Callable[["Kprobe", "Regs", "Task"], None]
"""``kprobe_post_handler_t``."""


class Kprobe:
    """A ``struct kprobe`` on a function's entry."""

    def __init__(
        self,
        symbol_name: str,
        pre_handler: PreHandler | None = None,
        post_handler: PostHandler | None = None,
        owner: str = "",
        module: str | None = None,
    ):
        self.symbol_name = symbol_name
        self.module = module  # "mod:func" lookup scope
        self.pre_handler = pre_handler
        self.post_handler = post_handler
        self.owner = owner
        self.addr: Symbol | None = None  # set by register_kprobe()
        self.armed = False
        self.registered = False
        self.hits = 0

    def __repr__(self) -> str:
        return f"<kprobe {self.symbol_name}>"


class Kprobes:
    """The kprobe registry of one kernel."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace, arm_error_ignored: bool):
        self.kernel = kernel
        self.ftrace = ftrace
        self.arm_error_ignored = arm_error_ignored
        self.enabled = True  # /sys/kernel/debug/kprobes/enabled
        self.probes: list[Kprobe] = []
        self.ftrace_ops = FtraceOps("kprobe_ftrace_ops", self._handler, FTRACE_OPS_FL_SAVE_REGS)
        self.ipmodify_ops = FtraceOps(
            "kprobe_ipmodify_ops", self._handler, FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY
        )
        self._users = {self.ftrace_ops: 0, self.ipmodify_ops: 0}
        fs = kernel.fs
        fs.create_file(
            "/sys/kernel/debug/kprobes/enabled",
            0o600,
            lambda: f"{int(self.enabled)}\n",
            self._set_enabled,
        )
        fs.create_file("/sys/kernel/debug/kprobes/list", 0o444, self._show_list)
        kernel.exports["kprobes"] = self
        # kprobes_module_callback() is a module notifier: it runs in the
        # GOING chain, before klp_module_going().
        kernel.modules.notifier.append(self._module_notify)

    def new_kprobe(
        self,
        symbol_name: str,
        pre_handler: PreHandler | None = None,
        post_handler: PostHandler | None = None,
        owner: str = "",
        module: str | None = None,
    ) -> Kprobe:
        return Kprobe(symbol_name, pre_handler, post_handler, owner, module)

    def _ops_for(self, kp: Kprobe) -> FtraceOps:
        return self.ipmodify_ops if kp.post_handler else self.ftrace_ops

    def _arm(self, kp: Kprobe) -> int:
        """__arm_kprobe_ftrace(): filter the ip, register the ops on first use."""
        ops = self._ops_for(kp)
        addr = kp.addr
        assert addr is not None  # resolved by register_kprobe()
        ret = self.ftrace.ftrace_set_filter_ip(ops, addr)
        if ret < 0:
            return ret
        if self._users[ops] == 0:
            ret = self.ftrace.register_ftrace_function(ops)
            if ret < 0:
                self.ftrace.ftrace_set_filter_ip(ops, addr, remove=True)
                return ret
        self._users[ops] += 1
        kp.armed = True
        return 0

    def _disarm(self, kp: Kprobe) -> None:
        addr = kp.addr
        if not kp.armed or addr is None:
            return
        ops = self._ops_for(kp)
        self._users[ops] -= 1
        if self._users[ops] == 0:
            self.ftrace.unregister_ftrace_function(ops)
        kp.armed = False
        # Probes on one address share an aggregate kprobe, armed once: the
        # address leaves the filter with the last of them.
        if not any(p.armed and p.addr is addr and self._ops_for(p) is ops for p in self.probes):
            self.ftrace.ftrace_set_filter_ip(ops, addr, remove=True)

    def register_kprobe(self, kp: Kprobe) -> int:
        sym = None
        if kp.module:
            obj = self.kernel.kallsyms.objects.get(kp.module)
            sym = obj.lookup(kp.symbol_name) if obj else None
        else:
            sym = self.kernel.kallsyms.lookup_name(kp.symbol_name)
        if sym is None:
            return -ENOENT
        if not sym.ftrace_loc:
            return -EINVAL  # only ftrace-based probes are modelled
        kp.addr = sym
        if self.enabled:
            ret = self._arm(kp)
            # Since 6.14, 587e8e6d640b, __register_kprobe() no longer returns
            # the arming error: the probe is taken out of kprobe_table again
            # (absent from kprobes/list, never fires) and 0 is returned.
            if ret:
                return 0 if self.arm_error_ignored else ret
        kp.registered = True
        self.probes.append(kp)
        return 0

    def unregister_kprobe(self, kp: Kprobe) -> None:
        if kp in self.probes:
            self._disarm(kp)
            self.probes.remove(kp)
            kp.registered = False

    def _module_notify(self, mod: Module, state: int) -> int:
        if state == MODULE_STATE_GOING:
            self._module_going(mod)
        return 0

    def _module_going(self, mod: Module) -> None:
        for kp in list(self.probes):
            if kp.addr is not None and kp.addr.owner.name == mod.name:
                self.unregister_kprobe(kp)  # kprobes_module_callback(): gone with its text

    def _handler(self, task: Task, ip: Symbol, ops: FtraceOps, regs: Regs) -> None:
        """kprobe_ftrace_handler(): run the probes on this ip."""
        for kp in list(self.probes):
            if kp.addr is not ip or not kp.armed or self._ops_for(kp) is not ops:
                continue
            kp.hits += 1
            if kp.pre_handler is not None and kp.pre_handler(kp, regs, task):
                continue  # the handler changed regs->ip: no post_handler
            if kp.post_handler is not None:
                kp.post_handler(kp, regs, task)

    def _set_enabled(self, text: str) -> int:
        """write_enabled_file_bool(): kstrtobool_from_user() (y, n, on, off, ...)."""
        enable = self.kernel.kstrtobool(text)
        if not isinstance(enable, bool):
            return -EINVAL
        if enable != self.enabled:
            self.enabled = enable
            for kp in self.probes:
                if enable:
                    self._arm(kp)
                else:
                    self._disarm(kp)
        return len(text)

    def _show_list(self) -> str:
        out = []
        for kp in self.probes:
            addr = kp.addr
            assert addr is not None  # registered
            flags = "[FTRACE]" if kp.armed else "[DISABLED][FTRACE]"
            mod = "" if addr.owner.name == "vmlinux" else f" [{addr.owner.name}]"
            out.append(f"{addr.addr:016x}  k  {kp.symbol_name}+0x0{mod}    {flags}\n")
        return "".join(out)
