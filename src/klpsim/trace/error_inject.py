"""Function error injection: the ALLOW_ERROR_INJECTION list, the override
that returns early from a function, and fail_function.

Mirrors lib/error-inject.c, arch/x86/lib/error-inject.c and
kernel/fail_function.c (CONFIG_FUNCTION_ERROR_INJECTION, CONFIG_FAIL_FUNCTION):

* the list is built at boot from vmlinux's ``_error_injection_whitelist``
  section and, per module, on MODULE_STATE_COMING (dropped on GOING), from
  the module's ``ALLOW_ERROR_INJECTION(func, type)`` entries;
  within_error_injection_list(addr) is "addr inside a listed function";
* ``/sys/kernel/debug/error_injection/list`` prints ``"%ps\\t%s\\n"``: the
  name (``name [mod]`` for a module function) and NULL, ERRNO, ERRNO_NULL or
  TRUE, in list order;
* override_function_with_return() (x86) sets regs->ip to just_return_func,
  a bare ``ret``: the caller gets the value put in regs->ax
  (regs_set_return_value()) and no body runs. Whatever ftrace handler writes
  regs->ip last decides where the call goes, so a later writer (a livepatch
  that runs after the override's ops) silently undoes it;
* fail_function: writing a listed function to ``fail_function/inject``
  registers a kprobe with a pre_handler that overrides the return when
  should_fail() says so, and a dummy post_handler, which makes the kprobe
  IPMODIFY: it excludes a livepatch on the same function (-EBUSY for
  whichever comes second; see trace/kprobes.py for 587e8e6d640b).

Without CONFIG_FUNCTION_ERROR_INJECTION (Debian's 6.1 and 6.12 kernels) the
list is empty and neither debugfs directory exists. fail_function is
CONFIG_FAIL_FUNCTION's (it needs CONFIG_FAULT_INJECTION_DEBUG_FS too): the
replace-set kernel (real/vm/rskernel.py) has the list and
bpf_override_return() but no fail_function directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from klpsim.kernel.errno import EBUSY, EINVAL, ENOENT, ERANGE
from klpsim.kernel.module import MODULE_STATE_COMING, MODULE_STATE_GOING
from klpsim.kernel.params import kstrtoint, kstrtoull
from klpsim.kernel.printk import KERN_NOTICE, KERN_WARNING
from klpsim.kernel.symbols import Symbol
from klpsim.kernel.tracepoint import Tracepoint
from klpsim.trace.events import FailFunctionInjected

if TYPE_CHECKING:
    from random import Random

    from klpsim.kernel.fs import VFS, Show, Store
    from klpsim.kernel.machine import CallContext, Kernel
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Regs
    from klpsim.kernel.tasks import Task
    from klpsim.trace.kprobes import Kprobe, Kprobes

__all__ = [
    "EI_ETYPE_NULL",
    "EI_ETYPE_ERRNO",
    "EI_ETYPE_ERRNO_NULL",
    "EI_ETYPE_TRUE",
    "EI_TYPES",
    "EiEntry",
    "ErrorInjection",
    "RaxLeftover",
    "VMLINUX_ERROR_INJECTION",
]


class RaxLeftover(int):
    """What a call returns when just_return_func is *called* rather than
    returned to: whatever rax held, not the override's regs->ax (measured on
    the replace-set kernel: 205104 from syncfs(-1)). The model cannot know
    the number; it prints as ``<undefined>``."""

    def __new__(cls) -> RaxLeftover:
        return super().__new__(cls, 0)

    def __str__(self) -> str:
        return "<undefined>"

    __repr__ = __str__


# include/asm-generic/error-injection.h
EI_ETYPE_NULL, EI_ETYPE_ERRNO, EI_ETYPE_ERRNO_NULL, EI_ETYPE_TRUE = 0, 1, 2, 3
EI_TYPES = {"NULL": EI_ETYPE_NULL, "ERRNO": EI_ETYPE_ERRNO, "ERRNO_NULL": EI_ETYPE_ERRNO_NULL,
            "TRUE": EI_ETYPE_TRUE}  # fmt: skip
_TYPE_NAMES = {v: k for k, v in EI_TYPES.items()}

MAX_ERRNO = 4095
U64 = 1 << 64

# The simulated vmlinux's own ALLOW_ERROR_INJECTION() entries besides the
# syscalls: mm/failslab.c and mm/page_alloc.c mark these two.
VMLINUX_ERROR_INJECTION = {
    "should_failslab": EI_ETYPE_ERRNO,
    "should_fail_alloc_page": EI_ETYPE_TRUE,
}
# Every SYSCALL_DEFINEx() carries ALLOW_ERROR_INJECTION(sys##name, ERRNO)
# (include/linux/syscalls.h); on x86-64 the entry points are __x64_sys_*.
SYSCALL_PREFIX = "__x64_sys_"

DEBUGFS = "/sys/kernel/debug"


class EiEntry(NamedTuple):
    """A ``struct ei_entry``: one listed function."""

    func: Symbol
    """The function; [addr, addr + size) is its range."""
    etype: int
    """EI_ETYPE_*."""
    mod: str | None
    """The module the entry came from (``priv``), None for vmlinux."""


class FaultAttr:
    """``struct fault_attr`` and should_fail() (lib/fault-inject.c), with a
    seeded generator for probabilities between 0 and 100."""

    def __init__(self, kernel: Kernel, name: str):
        self.kernel = kernel
        self.name = name
        self.probability = 0
        self.interval = 1
        self.times = 1
        self.space = 0
        self.verbose = 2
        self.count = 0
        self._rng: Random | None = None
        # ratelimit_state: RATELIMIT_STATE_INIT_DISABLED (interval 0: no
        # limit), until verbose_ratelimit_interval_ms is set.
        self.ratelimit_interval = 0
        """In jiffies, whatever the file's name says (debugfs_create_u32())."""
        self.ratelimit_burst = 10  # DEFAULT_RATELIMIT_BURST
        self._rs_begin = 0
        self._rs_printed = 0
        self._rs_missed = 0

    def should_fail(self, size: int = 1) -> bool:
        if self.probability == 0 or self.times == 0:
            return False
        if self.space > size:
            self.space -= size
            return False
        if self.interval > 1:
            self.count += 1
            if self.count % self.interval:
                return False
        if self._rng is None:  # seeded, created on first use (random costs start-up time)
            from random import Random

            self._rng = Random(0)
        if self.probability <= self._rng.randrange(100):
            return False
        self._fail_dump()
        if self.times != -1:
            self.times -= 1
        return True

    def _ratelimit(self) -> bool:
        """___ratelimit() of lib/ratelimit.c: at most burst messages in each
        window of interval jiffies; a new window first says how many were
        suppressed in the last one."""
        interval, burst = self.ratelimit_interval, self.ratelimit_burst
        if not interval:
            return True
        jiffies = self.kernel.clock.jiffies
        if not self._rs_begin:
            self._rs_begin = jiffies
        if jiffies > self._rs_begin + interval:  # time_is_before_jiffies()
            if self._rs_missed:
                self.kernel.log.printk(
                    KERN_WARNING, f"fail_dump: {self._rs_missed} callbacks suppressed"
                )
                self._rs_missed = 0
            self._rs_begin = jiffies
            self._rs_printed = 0
        if burst and burst > self._rs_printed:
            self._rs_printed += 1
            return True
        self._rs_missed += 1
        return False

    def _fail_dump(self) -> None:
        """fail_dump(): the notice. dump_stack() for verbose > 1 is not
        modelled: task stacks here are not the kernel's backtraces."""
        if self.verbose <= 0 or not self._ratelimit():
            return
        self.kernel.log.printk(
            KERN_NOTICE,
            "FAULT_INJECTION: forcing a failure.\n"
            f"name {self.name}, interval {self.interval}, probability {self.probability}, "
            f"space {self.space}, times {self.times}",
        )

    def files(self, fs: VFS, base: str) -> None:
        for attr in ("probability", "interval", "times", "space", "verbose"):
            fs.create_file(f"{base}/{attr}", 0o600, self._show(attr), self._store(attr))
        for name, attr in (
            ("verbose_ratelimit_interval_ms", "ratelimit_interval"),
            ("verbose_ratelimit_burst", "ratelimit_burst"),
        ):
            fs.create_file(f"{base}/{name}", 0o600, self._show(attr), self._store_u32(attr))

    def _store_u32(self, attr: str) -> Store:
        """debugfs_create_u32(): kstrtoull, then the low 32 bits."""

        def store(text: str) -> int:
            value = kstrtoull(text)
            if value < 0:
                return value
            setattr(self, attr, value % 2**32)
            return len(text)

        return store

    def _show(self, attr: str) -> Show:
        return lambda: f"{getattr(self, attr)}\n"

    def _store(self, attr: str) -> Store:
        """debugfs_create_ul() (kstrtoull) for probability, interval and
        verbose; debugfs_create_atomic_t() (kstrtoll, into an int) for times
        and space."""
        signed = attr in ("times", "space")

        def store(text: str) -> int:
            if signed:
                err, value = kstrtoint(text, -(2**63), 2**63 - 1)
                value = (value + 2**31) % 2**32 - 2**31  # atomic_set() of an int
            else:
                value = kstrtoull(text)
                err = min(value, 0)  # a negative errno, or 0
            if err:
                return err
            if attr == "probability" and not 0 <= value <= 100:
                return -EINVAL
            if attr == "interval" and value < 1:
                return -EINVAL
            setattr(self, attr, value)
            return len(text)

        return store


class FeiAttr:
    """A ``struct fei_attr``: one fail_function injection point."""

    def __init__(self, name: str, kprobe: Kprobe, retval: int):
        self.name = name
        self.kp = kprobe
        self.retval = retval  # unsigned long, as the kernel stores it


def to_signed(value: int) -> int:
    """An unsigned long return value as the (signed) int/long the caller sees."""
    value %= U64
    return value - U64 if value >= U64 // 2 else value


class ErrorInjection:
    """The error-injection list, just_return_func and fail_function of one kernel."""

    def __init__(self, kernel: Kernel, kprobes: Kprobes | None = None):
        self.kernel = kernel
        self.kprobes = kprobes
        self.enabled = kernel.has_config("FUNCTION_ERROR_INJECTION")
        self.entries: list[EiEntry] = []
        just_return_func = kernel.vmlinux.builtin("just_return_func")
        assert just_return_func is not None  # vmlinux.ARCH_FUNCS
        self.just_return_func = just_return_func
        just_return_func.impl = self._just_return
        self._ax: dict[int, int] = {}  # pid -> regs->ax set by an override
        self.fei: list[FeiAttr] = []
        self.fei_attr = FaultAttr(kernel, "fail_function")
        self.tp: Tracepoint[FailFunctionInjected] = Tracepoint()
        if not self.enabled:
            return
        self._populate_vmlinux()
        kernel.modules.notifier.append(self._module_callback)
        fs = kernel.fs
        fs.create_file(f"{DEBUGFS}/error_injection/list", 0o444, self._show_list)
        if kprobes is not None and kernel.has_config("FAIL_FUNCTION"):  # it needs kprobes
            base = f"{DEBUGFS}/fail_function"
            self.fei_attr.files(fs, base)
            fs.create_file(f"{base}/inject", 0o600, self._fei_show, self._fei_write)
            fs.create_file(f"{base}/injectable", 0o444, self._show_list)

    # -- the list ------------------------------------------------------------------

    def _populate_vmlinux(self) -> None:
        """populate_kernel_ei_list(): the whitelist section, in link order."""
        for sym in self.kernel.vmlinux.symbols:
            if sym.name.startswith(SYSCALL_PREFIX):
                self.entries.append(EiEntry(sym, EI_ETYPE_ERRNO, None))
            elif sym.name in VMLINUX_ERROR_INJECTION:
                self.entries.append(EiEntry(sym, VMLINUX_ERROR_INJECTION[sym.name], None))

    def add_vmlinux_entry(self, name: str, etype: int = EI_ETYPE_ERRNO) -> None:
        """A kernel built with one more ALLOW_ERROR_INJECTION() in vmlinux, like
        lpc26-livepatch's patch 0002 for cmdline_proc_show (NOT-FOR-UPSTREAM)."""
        sym = self.kernel.vmlinux.lookup(name)
        if sym is not None and self.enabled:
            self.entries.append(EiEntry(sym, etype, None))

    def _module_callback(self, mod: Module, state: int) -> int:
        """ei_module_callback(): load the module's entries on COMING, drop on GOING."""
        if state == MODULE_STATE_COMING:
            for func, etype in mod.spec.error_injection:
                sym = mod.text.lookup(func)
                if sym is None:
                    continue  # pr_err("Failed to find error inject entry at %p")
                self.entries.append(EiEntry(sym, EI_TYPES[etype], mod.name))
        elif state == MODULE_STATE_GOING:
            self.entries = [e for e in self.entries if e.mod != mod.name]
        return 0

    def _entry(self, sym: Symbol) -> EiEntry | None:
        for e in self.entries:
            # [start_addr, end_addr): a symbol of the same object at that address
            if e.func is sym or (
                e.func.owner is sym.owner and e.func.addr <= sym.addr < e.func.addr + e.func.size
            ):
                return e
        return None

    def within_error_injection_list(self, sym: Symbol) -> bool:
        return self._entry(sym) is not None

    def get_injectable_error_type(self, sym: Symbol) -> int | None:
        e = self._entry(sym)
        return None if e is None else e.etype

    def _show_list(self) -> str:
        out = []
        for e in self.entries:
            mod = "" if e.mod is None else f" [{e.mod}]"
            out.append(f"{e.func.name}{mod}\t{_TYPE_NAMES[e.etype]}\n")
        return "".join(out)

    # -- the override ----------------------------------------------------------------

    def override_function_with_return(self, task: Task, regs: Regs, retval: int) -> None:
        """regs_set_return_value() + override_function_with_return(): the call
        returns *retval* through just_return_func, unless a handler that runs
        later writes regs->ip again."""
        self._ax[task.pid] = retval
        regs.ip = self.just_return_func

    def call_just_return(self, task: Task) -> None:
        """A trampoline built with BPF_TRAMP_F_ORIG_STACK calls whatever the
        list handlers left in regs->ip: if that is just_return_func, it is
        called with the trampoline's rax, not regs->ax, and the override's
        value is lost (the caller gets :class:`RaxLeftover`)."""
        if task.pid in self._ax:
            self._ax[task.pid] = RaxLeftover()

    def _just_return(self, ctx: CallContext, *args: object) -> int:
        return self._ax.pop(ctx.task.pid, 0)

    # -- fail_function -----------------------------------------------------------------

    def adjust_error_retval(self, sym: Symbol, retv: int) -> int:
        etype = self.get_injectable_error_type(sym)
        if etype == EI_ETYPE_NULL:
            return 0
        if etype == EI_ETYPE_ERRNO and retv < U64 - MAX_ERRNO:
            return U64 - EINVAL
        if etype == EI_ETYPE_ERRNO_NULL and retv != 0 and retv < U64 - MAX_ERRNO:
            return U64 - EINVAL
        if etype == EI_ETYPE_TRUE:
            return 1
        return retv

    def _fei_show(self) -> str:
        return "".join(f"{a.name}\n" for a in self.fei)

    def _fei_write(self, text: str) -> int:
        """fei_write()."""
        name = text.strip()
        if not name:
            for attr in list(self.fei):
                self._fei_remove(attr)
            return len(text)
        if name.startswith("!"):
            found = next((a for a in self.fei if a.name == name[1:]), None)
            if found is None:
                return -ENOENT
            self._fei_remove(found)
            return len(text)
        sym = self.kernel.kallsyms.lookup_name(name)
        if sym is None:
            return -EINVAL
        if not self.within_error_injection_list(sym):
            return -ERANGE
        if any(a.name == name for a in self.fei):
            return -EBUSY
        kprobes = self.kprobes
        assert kprobes is not None  # fail_function/ exists only with kprobes

        def pre_handler(kp: Kprobe, regs: Regs, task: Task) -> int:
            if self.fei_attr.should_fail():
                value = to_signed(attr.retval)
                self.override_function_with_return(task, regs, value)
                self.tp(FailFunctionInjected(name, value))
                return 1
            return 0

        # The dummy post_handler "prohibits optimizing", and makes the probe
        # IPMODIFY: kprobe_ipmodify_ops.
        kp = kprobes.new_kprobe(
            name, pre_handler=pre_handler, post_handler=lambda *a: None, owner="fail_function"
        )
        attr = FeiAttr(name, kp, self.adjust_error_retval(sym, 0))
        ret = kprobes.register_kprobe(kp)
        if ret:
            return ret
        self.fei.append(attr)
        self.kernel.fs.create_file(
            f"{DEBUGFS}/fail_function/{name}/retval",
            0o600,
            lambda: f"{attr.retval:x}\n",
            lambda t: self._retval_store(attr, sym, t),
        )
        return len(text)

    def _retval_store(self, attr: FeiAttr, sym: Symbol, text: str) -> int:
        """fei_retval_set(): a value the function's type cannot return is -EINVAL."""
        if attr not in self.fei:
            return -ENOENT
        value = kstrtoull(text)  # simple_attr_write()
        if value < 0:
            return value
        if self.adjust_error_retval(sym, value) != value:
            return -EINVAL
        attr.retval = value
        return len(text)

    def _fei_remove(self, attr: FeiAttr) -> None:
        self.kernel.fs.remove(f"{DEBUGFS}/fail_function/{attr.name}")
        assert self.kprobes is not None  # fail_function/ exists only with kprobes
        self.kprobes.unregister_kprobe(attr.kp)
        self.fei.remove(attr)
