"""kprobes (kernel/kprobes.c), armed through ftrace (CONFIG_KPROBES_ON_FTRACE)
at a function's entry and as breakpoints inside a body.

Two ftrace_ops carry every ftrace-based kprobe: ``kprobe_ftrace_ops``
(SAVE_REGS) and ``kprobe_ipmodify_ops`` (SAVE_REGS | IPMODIFY). Each is
registered on its first armed probe and unregistered after its last; a
further probe only adds its address to the filter, so the ops keeps its
place in ftrace_ops_list. arm_kprobe_ftrace() picks the IPMODIFY one iff
the probe *being armed* has a post_handler (single-stepping moves the IP),
so a post_handler kprobe and a livepatch exclude each other on one
function (-EBUSY for the second) and a kprobe without one coexists.

A second probe at an address goes through register_aggr_kprobe(): both
become children of one aggregate ``struct kprobe`` (aggr_pre_handler walks
them newest first and stops at the first pre_handler that returns nonzero;
aggr_post_handler runs every post_handler). The aggregate is armed once,
on the ops its own ``post_handler`` selects *at arming time*
(register_kprobe(), enable_kprobe(), arm_all_kprobes(), or the join of an
enabled probe to a disabled aggregate); it is not re-armed when a probe
with a post_handler joins or leaves. __unregister_kprobe_top() keeps the
aggregate's post_handler on ftrace "to identify this aggrprobe armed with
kprobe_ipmodify_ops" (5dd7caf0bdc5, 6.1), but an aggregate armed on
kprobe_ftrace_ops that a post_handler probe joined is then disarmed
through kprobe_ipmodify_ops: ftrace_set_filter_ip() gives -ENOENT, the
WARN_ONCE "Failed to disarm kprobe-ftrace" fires, and unregistering the
last probe fails, leaving it armed. All of this is the same on 6.1, 6.12
and 7.1; the kernels differ only in __register_kprobe() (587e8e6d640b, a
profile hook) and in the IBT entry offset (see Kprobes).

The model keeps each kernel structure it needs: the 64-bucket kprobe_table
(hash_ptr() of the address; /sys/kernel/debug/kprobes/list walks it
bucket by bucket, newest first within one), the flags, the per-ops user
counts (which the failed disarm drives to -1 as the kernel does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from klpsim.kernel.errno import EILSEQ, EINVAL, ENOENT
from klpsim.kernel.module import MODULE_STATE_GOING
from klpsim.kernel.printk import KERN_INFO, KERN_WARNING
from klpsim.kernel.symbols import Regs
from klpsim.trace.ftrace import FTRACE_OPS_FL_IPMODIFY, FTRACE_OPS_FL_SAVE_REGS, FtraceOps

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.trace.ftrace import Ftrace

__all__ = [
    "Kprobe",
    "Kprobes",
    "PreHandler",
    "PostHandler",
    "KPROBE_FLAG_GONE",
    "KPROBE_FLAG_DISABLED",
    "KPROBE_FLAG_FTRACE",
    "KPROBE_FLAG_ON_FUNC_ENTRY",
    "hash_ptr",
]

PreHandler = Callable[["Kprobe", "Regs", "Task"], int]
"""``kprobe_pre_handler_t``: nonzero when it changed regs->ip (no single-step
and no post_handler then)."""
PostHandler = Callable[["Kprobe", "Regs", "Task"], None]
"""``kprobe_post_handler_t``."""

# include/linux/kprobes.h
KPROBE_FLAG_GONE = 1
KPROBE_FLAG_DISABLED = 2
KPROBE_FLAG_OPTIMIZED = 4
KPROBE_FLAG_FTRACE = 8
KPROBE_FLAG_ON_FUNC_ENTRY = 16

KPROBE_HASH_BITS = 6
KPROBE_TABLE_SIZE = 1 << KPROBE_HASH_BITS
GOLDEN_RATIO_64 = 0x61C8864680B583EB
MCOUNT_INSN_SIZE = 5  # x86: the 5-byte call __fentry__
ENDBR_INSN_SIZE = 4  # x86 IBT: endbr64 before it

# WARN_ONCE() in __disarm_kprobe_ftrace() (same text in 6.1, 6.12 and 7.1).
DISARM_WARN = "Failed to disarm kprobe-ftrace at {sym} (error {err})"


def hash_ptr(addr: int, bits: int = KPROBE_HASH_BITS) -> int:
    """hash_ptr() on 64-bit: hash_64_generic(), the multiplicative hash."""
    return ((addr * GOLDEN_RATIO_64) & ((1 << 64) - 1)) >> (64 - bits)


class Kprobe:
    """A ``struct kprobe``: a user's probe, or an aggregate (``aggr``) whose
    ``list`` holds the probes at one address, newest first."""

    def __init__(
        self,
        symbol_name: str,
        pre_handler: PreHandler | None = None,
        post_handler: PostHandler | None = None,
        owner: str = "",
        module: str | None = None,
        offset: int = 0,
        is_return: bool = False,
        flags: int = 0,
    ):
        self.symbol_name = symbol_name
        self.module = module  # "mod:func" lookup scope
        self.offset = offset  # as the user gave it (trace_kprobe prints it)
        self.pre_handler = pre_handler
        self.post_handler = post_handler
        self.owner = owner
        self.is_return = is_return  # pre_handler_kretprobe: "r" in kprobes/list
        self.flags = flags  # only KPROBE_FLAG_DISABLED may be passed in
        self.addr: Symbol | None = None  # the function, set by register_kprobe()
        self.addr_off = 0  # the probed address is addr.addr + addr_off
        self.aggr = False  # pre_handler == aggr_pre_handler
        self.list: list[Kprobe] = []  # an aggregate's probes, newest first
        self.hits = 0
        self.nmissed = 0
        self._kprobes: Kprobes | None = None
        # Set by the owner when the struct's memory goes (a module's data on
        # unload); a probe still registered then is a use-after-free: the
        # next access faults at struct_addr (seen on Debian's 6.12 after the
        # failed disarm of an aggregate).
        self.freed = False
        self.struct_addr = 0

    @property
    def ip(self) -> int:
        assert self.addr is not None
        return self.addr.addr + self.addr_off

    @property
    def disabled(self) -> bool:
        return bool(self.flags & KPROBE_FLAG_DISABLED)

    @property
    def gone(self) -> bool:
        return bool(self.flags & KPROBE_FLAG_GONE)

    @property
    def ftrace(self) -> bool:
        return bool(self.flags & KPROBE_FLAG_FTRACE)

    @property
    def registered(self) -> bool:
        """__get_valid_kprobe() finds it (in kprobe_table, or a child there)
        and its text is still there (not GONE with its module)."""
        return (
            self._kprobes is not None
            and not self.gone
            and self._kprobes._get_valid_kprobe(self) is not None
        )

    @property
    def armed(self) -> bool:
        """Would an entry to (or a run through) the address reach its handlers?"""
        return self._kprobes is not None and self._kprobes.kprobe_armed(self)

    def __repr__(self) -> str:
        return f"<kprobe {'aggr ' if self.aggr else ''}{self.symbol_name}+{self.addr_off:#x}>"


class Kprobes:
    """The kprobe registry of one kernel.

    *arm_error_ignored*: since 6.14, 587e8e6d640b ("kprobes: Adopt guard() and
    scoped_guard()"), __register_kprobe() returns 0 when arming a new probe
    fails (the probe is taken out of kprobe_table again). *ibt*: with
    CONFIG_X86_KERNEL_IBT, arch_adjust_kprobe_addr() moves a probe at
    ``func+0`` past the endbr64 to ``func+4``, where __fentry__ is called.
    """

    def __init__(
        self,
        kernel: Kernel,
        ftrace: Ftrace,
        arm_error_ignored: bool,
        ibt: bool = False,
        disarm_warn_at: str = "kernel/kprobes.c __disarm_kprobe_ftrace",
        insns: dict[str, frozenset[int]] | None = None,
    ):
        self.kernel = kernel
        self.ftrace = ftrace
        self.arm_error_ignored = arm_error_ignored
        self.ibt = ibt
        self.insns = insns or {}  # Profile.kprobe_insns: where instructions start
        self.disarm_warn_at = disarm_warn_at  # the WARN's "at FILE:LINE FUNC+OFF/SIZE"
        self.all_disarmed = False  # kprobes_all_disarmed
        self.table: list[list[Kprobe]] = [[] for _ in range(KPROBE_TABLE_SIZE)]
        self.ftrace_ops = FtraceOps(
            "kprobe_ftrace_ops", self.kprobe_ftrace_handler, FTRACE_OPS_FL_SAVE_REGS
        )
        self.ipmodify_ops = FtraceOps(
            "kprobe_ipmodify_ops",
            self.kprobe_ftrace_handler,
            FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY,
        )
        for ops in (self.ftrace_ops, self.ipmodify_ops):
            ops.func_name = "kprobe_ftrace_handler"
            ops.trampoline = True  # a static ops: x86 still gives it one
        self.ftrace_enabled = 0  # kprobe_ftrace_enabled
        self.ipmodify_enabled = 0  # kprobe_ipmodify_enabled
        self._order: list[Kprobe] = []  # user probes in registration order
        self._running: dict[int, Kprobe] = {}  # pid -> current_kprobe
        fs = kernel.fs
        fs.create_file(
            "/sys/kernel/debug/kprobes/enabled",
            0o600,
            lambda: f"{int(not self.all_disarmed)}\n",
            self._write_enabled,
        )
        fs.create_file("/sys/kernel/debug/kprobes/list", 0o444, self.show_kprobe_addr)
        kernel.exports["kprobes"] = self
        # kprobes_module_callback() is a module notifier: it runs in the
        # GOING chain, before klp_module_going().
        kernel.modules.notifier.append(self._module_notify)
        kernel.call_observers.append(self._breakpoints)

    # -- compatibility views ---------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """/sys/kernel/debug/kprobes/enabled."""
        return not self.all_disarmed

    @property
    def probes(self) -> list[Kprobe]:
        """Registered user probes (not aggregates), in registration order."""
        return [kp for kp in self._order if kp.registered]

    def new_kprobe(
        self,
        symbol_name: str,
        pre_handler: PreHandler | None = None,
        post_handler: PostHandler | None = None,
        owner: str = "",
        module: str | None = None,
        offset: int = 0,
        is_return: bool = False,
    ) -> Kprobe:
        return Kprobe(symbol_name, pre_handler, post_handler, owner, module, offset, is_return)

    # -- kprobe_table ------------------------------------------------------------------

    def _bucket(self, p: Kprobe) -> list[Kprobe]:
        return self.table[hash_ptr(p.ip)]

    def get_kprobe(self, sym: Symbol, off: int) -> Kprobe | None:
        """get_kprobe(addr): the probe (or aggregate) at that address."""
        for p in self.table[hash_ptr(sym.addr + off)]:
            if p.addr is sym and p.addr_off == off:
                return p
        return None

    def _get_valid_kprobe(self, p: Kprobe) -> Kprobe | None:
        """__get_valid_kprobe(): the aggregate (or *p* itself) if *p* is registered."""
        if p.addr is None:
            return None
        ap = self.get_kprobe(p.addr, p.addr_off)
        if ap is None:
            return None
        if ap is p or p in ap.list:
            return ap
        return None

    def _walk(self) -> Iterator[Kprobe]:
        for bucket in self.table:
            yield from list(bucket)

    # -- arming ------------------------------------------------------------------------

    def _ops(self, p: Kprobe) -> FtraceOps:
        """arm/disarm_kprobe_ftrace(): ``ipmodify = (p->post_handler != NULL)``."""
        return self.ipmodify_ops if p.post_handler is not None else self.ftrace_ops

    def _count(self, ops: FtraceOps, delta: int = 0) -> int:
        if ops is self.ipmodify_ops:
            self.ipmodify_enabled += delta
            return self.ipmodify_enabled
        self.ftrace_enabled += delta
        return self.ftrace_enabled

    def _arm_kprobe_ftrace(self, p: Kprobe) -> int:
        """__arm_kprobe_ftrace(): filter the ip, register the ops on first use."""
        ops = self._ops(p)
        assert p.addr is not None
        ret = self.ftrace.ftrace_set_filter_ip(ops, p.addr)
        if ret < 0:
            return ret
        if self._count(ops) == 0:
            ret = self.ftrace.register_ftrace_function(ops)
            if ret < 0:
                self.ftrace.ftrace_set_filter_ip(ops, p.addr, remove=True)
                return ret
        self._count(ops, +1)
        return 0

    def _disarm_kprobe_ftrace(self, p: Kprobe) -> int:
        """__disarm_kprobe_ftrace(): by the ops p's post_handler selects *now*."""
        ops = self._ops(p)
        assert p.addr is not None
        if self._count(ops) == 1:
            ret = self.ftrace.unregister_ftrace_function(ops)
            if ret < 0:
                return ret
        self._count(ops, -1)
        ret = self.ftrace.ftrace_set_filter_ip(ops, p.addr, remove=True)
        if ret < 0:
            self.kernel.warn(
                DISARM_WARN.format(sym=self._ps(p), err=ret),
                self.disarm_warn_at,
                once_key="__disarm_kprobe_ftrace",
            )
        return ret

    def arm_kprobe(self, p: Kprobe) -> int:
        if p.ftrace:
            return self._arm_kprobe_ftrace(p)
        return 0  # __arm_kprobe(): the breakpoint is written

    def disarm_kprobe(self, p: Kprobe) -> int:
        if p.ftrace:
            return self._disarm_kprobe_ftrace(p)
        return 0

    def kprobe_armed(self, kp: Kprobe) -> bool:
        ap = self._get_valid_kprobe(kp)
        if ap is None or kp.disabled or ap.disabled or kp.gone or self.all_disarmed:
            return False
        if not ap.ftrace:
            return True
        assert ap.addr is not None
        return any(
            ops.enabled and ap.addr in ops.filter for ops in (self.ftrace_ops, self.ipmodify_ops)
        )

    def armed_on(self, kp: Kprobe) -> FtraceOps | None:
        """The ops *kp*'s aggregate (or *kp*) is armed on: the one whose filter
        holds its function, kprobe_ipmodify_ops iff the aggregate had a
        post_handler when it was armed; None if *kp* is not armed through
        ftrace (an int3 probe, or not armed)."""
        ap = self._get_valid_kprobe(kp)
        if ap is None or not ap.ftrace or not self.kprobe_armed(kp):
            return None
        assert ap.addr is not None
        for ops in (self.ftrace_ops, self.ipmodify_ops):
            if ops.enabled and ap.addr in ops.filter:
                return ops
        return None

    # -- registration -------------------------------------------------------------------

    def _kprobe_addr(self, p: Kprobe) -> tuple[Symbol, int, bool] | int:
        """_kprobe_addr() and arch_adjust_kprobe_addr(): (function, offset in
        it, on_func_entry) or -errno."""
        if p.module:
            obj = self.kernel.kallsyms.objects.get(p.module)
            sym = obj.lookup(p.symbol_name) if obj else None
        else:
            sym = self.kernel.kallsyms.lookup_name(p.symbol_name)
        if sym is None or p.offset >= sym.size:
            return -ENOENT
        off = p.offset
        if self.ibt:
            entry = off in (0, ENDBR_INSN_SIZE)
            if entry:
                off = ENDBR_INSN_SIZE
        else:
            entry = off == 0
        return sym, off, entry

    def _entry_off(self) -> int:
        return ENDBR_INSN_SIZE if self.ibt else 0

    def kprobe_on_func_entry(self, p: Kprobe) -> int:
        """kprobe_on_func_entry(): 0, -EINVAL (not the entry) or -ENOENT."""
        res = self._kprobe_addr(p)
        if isinstance(res, int):
            return res
        return 0 if res[2] else -EINVAL

    def check_kprobe_address(self, p: Kprobe) -> tuple[Symbol, int, bool, bool] | int:
        """_kprobe_addr(), check_ftrace_location() and can_probe(): (function,
        offset, on_func_entry, on ftrace) or -errno."""
        res = self._kprobe_addr(p)
        if isinstance(res, int):
            return res
        sym, off, on_func_entry = res
        entry = self._entry_off()
        if sym.ftrace_loc and off == entry:
            return sym, off, on_func_entry, True
        if sym.ftrace_loc and entry < off < entry + MCOUNT_INSN_SIZE:
            return -EILSEQ  # inside the call __fentry__: not an instruction boundary
        if self.ibt and 0 < off < ENDBR_INSN_SIZE:
            return -EILSEQ  # inside endbr64
        insns = self.insns.get(sym.name) if sym.owner.name == "vmlinux" else None
        if insns is not None and off not in insns:
            return -EILSEQ  # can_probe(): inside an instruction (as measured)
        return sym, off, on_func_entry, False

    def register_kprobe(self, p: Kprobe) -> int:
        """register_kprobe() and __register_kprobe()."""
        res = self.check_kprobe_address(p)
        if isinstance(res, int):
            return res
        sym, off, on_func_entry, on_ftrace = res
        p.addr, p.addr_off = sym, off
        p._kprobes = self
        if self._get_valid_kprobe(p) is not None:
            return -EINVAL  # warn_kprobe_rereg()
        p.flags &= KPROBE_FLAG_DISABLED
        p.nmissed = 0
        p.list = []
        if on_ftrace:
            p.flags |= KPROBE_FLAG_FTRACE
        if on_func_entry:
            p.flags |= KPROBE_FLAG_ON_FUNC_ENTRY
        if p not in self._order:
            self._order.append(p)
        old_p = self.get_kprobe(sym, off)
        if old_p is not None:
            return self.register_aggr_kprobe(old_p, p)
        self._bucket(p).insert(0, p)  # hlist_add_head_rcu()
        if not self.all_disarmed and not p.disabled:
            ret = self.arm_kprobe(p)
            if ret:
                self._bucket(p).remove(p)
                # Since 6.14, 587e8e6d640b, __register_kprobe() no longer
                # returns the arming error: the probe is out of kprobe_table
                # (absent from kprobes/list, never fires) and 0 is returned.
                return 0 if self.arm_error_ignored else ret
        return 0

    def _init_aggr_kprobe(self, p: Kprobe) -> Kprobe:
        """alloc_aggr_kprobe() + init_aggr_kprobe(): *p* becomes the first child."""
        ap = Kprobe(p.symbol_name, owner="aggr", module=p.module)
        ap.addr, ap.addr_off, ap._kprobes = p.addr, p.addr_off, self
        ap.flags = p.flags & ~KPROBE_FLAG_OPTIMIZED
        ap.aggr = True
        ap.pre_handler = self._aggr_pre_handler
        if p.post_handler is not None and not p.gone:
            ap.post_handler = self._aggr_post_handler
        ap.list = [p]
        bucket = self._bucket(p)
        bucket[bucket.index(p)] = ap  # hlist_replace_rcu()
        return ap

    def register_aggr_kprobe(self, orig_p: Kprobe, p: Kprobe) -> int:
        """register_aggr_kprobe(): *p* joins orig_p's aggregate. The aggregate
        is armed only if it was disabled and *p* is not: an armed aggregate
        stays on the ops it was armed with."""
        ap = orig_p if orig_p.aggr else self._init_aggr_kprobe(orig_p)
        if ap.gone:
            # The module text came back (a probe on a reloaded module): the
            # aggregate is prepared again and waits to be armed.
            ap.flags = (ap.flags & ~KPROBE_FLAG_GONE) | KPROBE_FLAG_DISABLED
        # add_new_kprobe()
        ap.list.insert(0, p)
        if p.post_handler is not None and ap.post_handler is None:
            ap.post_handler = self._aggr_post_handler
        if ap.disabled and not p.disabled:
            ap.flags &= ~KPROBE_FLAG_DISABLED
            if not self.all_disarmed:
                ret = self.arm_kprobe(ap)
                if ret:
                    ap.flags |= KPROBE_FLAG_DISABLED
                    ap.list.remove(p)
                    return ret
        return 0

    def _aggr_kprobe_disabled(self, ap: Kprobe) -> bool:
        return all(kp.disabled for kp in ap.list)

    def _disable_kprobe(self, p: Kprobe) -> Kprobe | int:
        """__disable_kprobe(): the aggregate (or p) or -errno."""
        orig_p = self._get_valid_kprobe(p)
        if orig_p is None:
            return -EINVAL
        if p.disabled:
            return orig_p
        if p is not orig_p:
            p.flags |= KPROBE_FLAG_DISABLED
        if p is orig_p or self._aggr_kprobe_disabled(orig_p):
            if not self.all_disarmed and not orig_p.disabled:
                ret = self.disarm_kprobe(orig_p)
                if ret:
                    p.flags &= ~KPROBE_FLAG_DISABLED
                    return ret
            orig_p.flags |= KPROBE_FLAG_DISABLED
        return orig_p

    def _unregister_kprobe_top(self, p: Kprobe) -> int:
        """__unregister_kprobe_top()."""
        ap = self._disable_kprobe(p)
        if isinstance(ap, int):
            return ap
        if ap is p or (len(ap.list) == 1 and ap.disabled):
            self._bucket(ap).remove(ap)  # hlist_del_rcu()
            if ap is not p:
                ap.list.clear()  # __unregister_kprobe_bottom(): the last child frees ap
            return 0
        others = any(kp is not p and kp.post_handler is not None for kp in ap.list)
        # "For the kprobe-on-ftrace case, we keep the post_handler setting to
        # identify this aggrprobe armed with kprobe_ipmodify_ops"
        # (5dd7caf0bdc5) -- whichever ops it was armed with.
        if p.post_handler is not None and not p.gone and not others and not ap.ftrace:
            ap.post_handler = None
        ap.list.remove(p)
        return 0

    def unregister_kprobe(self, p: Kprobe) -> None:
        """unregister_kprobes() of one probe: a failure leaves it registered."""
        if self._unregister_kprobe_top(p) < 0:
            return  # kps[i]->addr = NULL: nothing more is done
        if p in self._order:
            self._order.remove(p)

    def enable_kprobe(self, kp: Kprobe) -> int:
        """enable_kprobe(): arms the aggregate by its post_handler now."""
        p = self._get_valid_kprobe(kp)
        if p is None or kp.gone:
            return -EINVAL
        if p is not kp:
            kp.flags &= ~KPROBE_FLAG_DISABLED
        if not self.all_disarmed and p.disabled:
            p.flags &= ~KPROBE_FLAG_DISABLED
            ret = self.arm_kprobe(p)
            if ret:
                p.flags |= KPROBE_FLAG_DISABLED
                if p is not kp:
                    kp.flags |= KPROBE_FLAG_DISABLED
                return ret
        return 0

    def disable_kprobe(self, kp: Kprobe) -> int:
        ret = self._disable_kprobe(kp)
        return ret if isinstance(ret, int) else 0

    # -- modules -------------------------------------------------------------------------

    def _module_notify(self, mod: Module, state: int) -> int:
        if state == MODULE_STATE_GOING:
            for p in list(self._walk()):
                if p.addr is not None and p.addr.owner.name == mod.name:
                    self._kill_kprobe(p)
        return 0

    def _kill_kprobe(self, p: Kprobe) -> None:
        """kill_kprobe(): the text goes away; the probe stays registered, GONE."""
        if p.ftrace and not p.disabled and not self.all_disarmed:
            self._disarm_kprobe_ftrace(p)
        p.flags |= KPROBE_FLAG_GONE
        if p.aggr:
            for kp in p.list:
                kp.flags |= KPROBE_FLAG_GONE
            p.post_handler = None

    # -- kprobes/enabled -------------------------------------------------------------------

    def _write_enabled(self, text: str) -> int:
        """write_enabled_file_bool(): kstrtobool, then arm or disarm all."""
        value = self.kernel.kstrtobool(text)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        ret = self.arm_all_kprobes() if value else self.disarm_all_kprobes()
        return ret if ret < 0 else len(text)

    def arm_all_kprobes(self) -> int:
        if not self.all_disarmed:
            return 0
        self.all_disarmed = False
        total = errors = ret = 0
        for p in self._walk():
            if not p.disabled:
                err = self.arm_kprobe(p)
                if err:
                    errors += 1
                    ret = err
                total += 1
        if errors:
            self.kernel.log.printk(
                KERN_WARNING,
                f"kprobes: Kprobes globally enabled, but failed to enable {errors} out of "
                f"{total} probes. Please check which kprobes are kept disabled via debugfs.",
            )
        else:
            self.kernel.log.printk(KERN_INFO, "kprobes: Kprobes globally enabled")
        return ret

    def disarm_all_kprobes(self) -> int:
        if self.all_disarmed:
            return 0
        self.all_disarmed = True
        total = errors = ret = 0
        for p in self._walk():
            if not p.disabled:
                err = self.disarm_kprobe(p)
                if err:
                    errors += 1
                    ret = err
                total += 1
        if errors:
            self.kernel.log.printk(
                KERN_WARNING,
                f"kprobes: Kprobes globally disabled, but failed to disable {errors} out of "
                f"{total} probes. Please check which kprobes are kept enabled via debugfs.",
            )
        else:
            self.kernel.log.printk(KERN_INFO, "kprobes: Kprobes globally disabled")
        return ret

    # -- hits ------------------------------------------------------------------------------

    def _touch(self, kp: Kprobe) -> None:
        """Dereference *kp*: an oops if its memory is gone."""
        if kp.freed:
            self.kernel.oops_page_fault(kp.struct_addr)

    def _aggr_pre_handler(self, ap: Kprobe, regs: Regs, task: Task) -> int:
        """aggr_pre_handler(): newest first; a nonzero return ends the walk."""
        for kp in list(ap.list):
            self._touch(kp)
            if kp.disabled:
                continue
            kp.hits += 1
            if kp.pre_handler is not None and kp.pre_handler(kp, regs, task):
                return 1
        return 0

    def _aggr_post_handler(self, ap: Kprobe, regs: Regs, task: Task) -> None:
        for kp in list(ap.list):
            self._touch(kp)
            if kp.post_handler is not None and not kp.disabled:
                kp.post_handler(kp, regs, task)

    def _run(self, p: Kprobe, regs: Regs, task: Task, restore: bool) -> None:
        """The common part of kprobe_ftrace_handler() and kprobe_int3_handler()."""
        if task.pid in self._running:
            p.nmissed += 1  # kprobes_inc_nmissed_count(); children are not told apart
            return
        self._touch(p)
        orig_ip = regs.ip
        self._running[task.pid] = p
        try:
            if not p.aggr:
                p.hits += 1
            if p.pre_handler is None or not p.pre_handler(p, regs, task):
                if p.post_handler is not None:
                    p.post_handler(p, regs, task)
                if restore:
                    regs.ip = orig_ip  # the emulated single-step puts back the ip it found
        finally:
            del self._running[task.pid]

    def kprobe_ftrace_handler(self, task: Task, ip: Symbol, ops: FtraceOps, regs: Regs) -> None:
        """kprobe_ftrace_handler(): the probe is found by address, whichever of
        the two ops called it."""
        p = self.get_kprobe(ip, self._entry_off())
        if p is None or p.disabled:
            return
        self._run(p, regs, task, restore=True)

    def _breakpoints(self, task: Task, sym: Symbol, target: Symbol | None, result: int) -> None:
        """int3 probes inside a body fire when that body ran (the model keeps
        no instruction order inside a body, so they fire as it returns)."""
        if target is None:
            return
        for p in list(self._walk()):
            if (
                p.addr is target
                and not p.ftrace
                and not p.disabled
                and not p.gone
                and not self.all_disarmed
            ):
                self._run(p, Regs(target, ()), task, restore=False)

    # -- debugfs kprobes/list -------------------------------------------------------------

    def _ps(self, p: Kprobe) -> str:
        """%pS of the probed address."""
        assert p.addr is not None
        mod = "" if p.addr.owner.name == "vmlinux" else f" [{p.addr.owner.name}]"
        return f"{p.addr.name}+{p.addr_off:#x}/{p.addr.size:#x}{mod}"

    def _report_probe(self, p: Kprobe, pp: Kprobe | None) -> str:
        """report_probe()."""
        self._touch(p)
        assert p.addr is not None
        kind = "r" if p.is_return else "k"
        mod = p.addr.owner.name if p.addr.owner.name != "vmlinux" else " "
        pp = pp or p
        flags = (
            ("[GONE]" if p.gone else "")
            + ("[DISABLED]" if p.disabled and not p.gone else "")
            + ("[FTRACE]" if pp.ftrace else "")
        )
        return f"{p.ip:016x}  {kind}  {p.addr.name}+{p.addr_off:#x}  {mod} {flags}\n"

    def show_kprobe_addr(self) -> str:
        out: list[str] = []
        for p in self._walk():
            if p.aggr:
                out.extend(self._report_probe(kp, p) for kp in p.list)
            else:
                out.append(self._report_probe(p, None))
        return "".join(out)
