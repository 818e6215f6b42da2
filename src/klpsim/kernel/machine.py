"""The simulated machine: one object that owns every kernel subsystem.

It knows nothing about livepatch. Higher layers plug in through the same
places the real kernel offers: a function's ftrace call site
(``Symbol.fentry``), the module loader's hooks, the scheduler's switch
points, sysfs files and the exported-symbol table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from klpsim.kernel.clock import Clock
from klpsim.kernel.fs import VFS
from klpsim.kernel.module import ModuleLoader
from klpsim.kernel.params import kstrtobool
from klpsim.kernel.printk import Printk
from klpsim.kernel.symbols import Kallsyms, Regs, Symbol
from klpsim.kernel.tasks import Scheduler, Task
from klpsim.kernel.vmlinux import PROC_SHOW, build_vmlinux

__all__ = ["KernelConfig", "Kernel", "CallContext", "CallObserver", "KernelOops"]

CallObserver = Callable[[Task, Symbol, Symbol | None, int], None]
"""observer(task, called function, function whose body ran or None if the
call was overridden, return value): run after every Kernel.invoke()."""


@dataclass(frozen=True)
class KernelConfig:
    """What distinguishes one simulated kernel build and boot from another."""

    release: str = "7.1.0"
    """``uname -r``."""
    nr_cpus: int = 2
    """Online CPUs; every one but the shell's runs its idle task."""
    config: frozenset[str] = frozenset()
    """CONFIG_ options that are set (without the CONFIG_ prefix)."""
    cmdline: str = "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda ro console=ttyS0"
    kstrtobool_enable_disable: bool = True
    """kstrtobool() takes e/E and d/D (since 6.16)."""
    extra_funcs: int = 0
    """Extra patchable vmlinux functions ``klpsim_func_<i>``, for scale tests."""
    state_restore_oops_at: str = "pre_unpatch_callback+0x8e/0xc0"
    """Profile.state_restore_oops_at: test_klp_state2/3's NULL dereference."""
    lsm_hooks: bool = True
    """The ``security_*`` LSM hooks are functions (CONFIG_SECURITY; without
    it they are static inline stubs that kallsyms and BTF never see)."""
    kthreads: tuple[tuple[str, tuple[str, ...]], ...] = field(
        default=(
            ("kthreadd", ("ret_from_fork", "kthread", "schedule")),
            ("rcu_gp", ("ret_from_fork", "kthread", "rcu_gp_kthread", "schedule")),
            ("ksoftirqd/0", ("ret_from_fork", "kthread", "smpboot_thread_fn", "schedule")),
            ("kworker/0:1", ("ret_from_fork", "kthread", "worker_thread", "schedule")),
            ("ksoftirqd/1", ("ret_from_fork", "kthread", "smpboot_thread_fn", "schedule")),
            ("kworker/1:1", ("ret_from_fork", "kthread", "worker_thread", "schedule")),
        )
    )


class KernelOops(Exception):
    """The current task oopsed (the splat is logged); the kernel kills it and
    the shell reports the command as ``Killed``."""


class CallContext:
    """What a function body sees: the kernel, the calling task, the symbol."""

    __slots__ = ("kernel", "task", "sym")

    def __init__(self, kernel: Kernel, task: Task, sym: Symbol):
        self.kernel = kernel
        self.task = task
        self.sym = sym


class Kernel:
    """A booted simulated kernel."""

    def __init__(self, config: KernelConfig | None = None):
        self.config = config or KernelConfig()
        self.clock = Clock()
        self.log = Printk(self.clock)
        self.fs = VFS()
        self.kallsyms = Kallsyms()
        self.sched = Scheduler(self.config.nr_cpus)
        self.modules = ModuleLoader(self)
        # EXPORT_SYMBOL(): each entry is whatever its subsystem exports (a
        # function, an object); the user knows its type, as a C caller knows
        # the prototype, and the kernel layer cannot name types above it.
        self.exports: dict[str, Any] = {}
        self.vmlinux = build_vmlinux(
            self.config.cmdline,
            self.version_string(),
            self.config.extra_funcs,
            lsm_hooks=self.config.lsm_hooks,
        )
        self.kallsyms.add_object(self.vmlinux)
        self.clock.on_time_passes.append(self.sched.tick)
        self.clock.quiet.append(self.sched.idle_while_time_passes)
        self.call_observers: list[CallObserver] = []
        self.data_symbols: list[str] = []
        self._pointers: dict[int, tuple[object, str]] = {}
        self._warned: set[str] = set()  # vmlinux data shown in /proc/kallsyms
        self._oopses = 0
        self._boot()

    def kstrtobool(self, s: str) -> bool | int:
        return kstrtobool(s, self.config.kstrtobool_enable_disable)

    def warn(self, message: str, where: str, once_key: str | None = None) -> None:
        """WARN(): the "cut here" splat, without the register and stack dump.

        *where* is ``file:line function+off/size``; WARN_ON_ONCE() passes a
        *once_key*. The message is printed as given, with no pr_fmt() prefix.
        """
        if once_key is not None:
            if once_key in self._warned:
                return
            self._warned.add(once_key)
        pid = self.sched.current.pid
        for line in (
            "------------[ cut here ]------------",
            message,
            f"WARNING: CPU: 0 PID: {pid} at {where}",
            self.modules.print_modules(),
            "---[ end trace 0000000000000000 ]---",
        ):
            if line:
                self.log.printk(4, line)

    def oops_page_fault(self, addr: int, rip: str | None = None) -> NoReturn:
        """A read of unmapped kernel memory (e.g. a freed module's data, or
        address 0): the lines of page_fault_oops() and __die(), then the task
        is killed. *rip*: ``FUNC+OFF/SIZE [MODULE]`` where it faulted, which
        __die() prints, and oops_end() once more after the end marker. The
        rest of the register dump and the backtrace are not modelled."""
        what = (
            "kernel NULL pointer dereference, address:"
            if addr < 4096  # page_fault_oops(): a fault in the zero page
            else "unable to handle page fault for address:"
        )
        regs = [f"RIP: 0010:{rip}"] if rip else []
        for line in (
            f"BUG: {what} {addr:016x}",
            "#PF: supervisor read access in kernel mode",
            "#PF: error_code(0x0000) - not-present page",
            f"Oops: Oops: 0000 [#{self._oopses + 1}] PREEMPT SMP NOPTI",
            *regs,
            self.modules.print_modules(),
            "---[ end trace 0000000000000000 ]---",
            *regs,
        ):
            self.log.printk(1, line)
        self._oopses += 1
        raise KernelOops(addr)

    def hashed_ptr(self, obj: object) -> str:
        """``%p``: a per-boot hashed value, the same for one object each time."""
        entry = self._pointers.get(id(obj))
        if entry is None:
            n = len(self._pointers) + 1
            value = (n * 0x9E3779B97F4A7C15) & 0xFFFFFFFF  # kernel %p hashes to 32 bits
            entry = self._pointers[id(obj)] = (obj, f"{value:016x}")
        return entry[1]

    def has_config(self, option: str) -> bool:
        return option in self.config.config

    def version_string(self) -> str:
        return (
            f"Linux version {self.config.release} (klpsim@klpsim) (gcc (Debian 12.2.0-14) "
            "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC"
        )

    def _boot(self) -> None:
        fs = self.fs
        for d in (
            "/sys/kernel",
            "/sys/module",
            "/sys/kernel/debug",
            "/sys/kernel/tracing",
            "/proc/sys/kernel",
            "/dev",
        ):
            fs.mkdir(d)
        for func, path in PROC_SHOW.items():
            fs.create_file(path, 0o444, self._proc_show(func))
        fs.create_file("/proc/kallsyms", 0o444, self._kallsyms_show)
        fs.create_file("/dev/kmsg", 0o644, lambda: "", self._kmsg_write)
        # drivers/char/mem.c's null device: reads are empty, writes vanish.
        fs.create_file("/dev/null", 0o666, lambda: "", len)
        fs.create_file(
            "/sys/kernel/debug/dynamic_debug/control", 0o644, lambda: "", self._dyndbg_write
        )
        sched = self.sched
        init = sched.spawn(
            "init",
            stack=self._frames(
                (
                    "entry_SYSCALL_64",
                    "do_syscall_64",
                    "__x64_sys_wait4",
                    "kernel_wait4",
                    "do_wait",
                    "schedule",
                )
            ),
        )
        self._proc_pid(init)
        for comm, frames in self.config.kthreads:
            task = sched.spawn(comm, kthread=True, stack=self._frames(frames))
            task.freezable = comm.startswith(("kworker", "ksoftirqd"))
            self._proc_pid(task)
        self.kworker = next(t for t in sched.tasks.values() if t.comm.startswith("kworker"))
        shell = self.spawn("bash", pid=1000)
        shell.on_cpu = True
        sched.current = shell

    def _vmlinux_func(self, name: str) -> Symbol:
        sym = self.vmlinux.builtin(name)
        if sym is None:
            raise LookupError(f"no vmlinux function {name}")
        return sym

    def _frames(self, names: Iterable[str]) -> list[Symbol]:
        return [self._vmlinux_func(n) for n in names]

    def spawn(
        self, comm: str, kthread: bool = False, stack: Iterable[str] = (), pid: int | None = None
    ) -> Task:
        """Fork a task (from the current one) and give it its /proc entry."""
        task = self.sched.spawn(comm, kthread, self._frames(stack), pid=pid)
        self._proc_pid(task)
        return task

    def exit_task(self, task: Task) -> None:
        self.sched.exit(task)
        self.fs.remove(f"/proc/{task.pid}")

    def _proc_pid(self, task: Task) -> None:
        d = self.fs.mkdir(f"/proc/{task.pid}", 0o555)
        self.fs.add_file(d, "comm", 0o644, lambda: task.comm + "\n")
        self.fs.add_file(d, "patch_state", 0o444, lambda: f"{task.patch_state}\n")
        self.fs.add_file(
            d,
            "stack",
            0o400,
            lambda: "".join(f"[<0>] {s.name}+0x0/0x{s.size:x}\n" for s in reversed(task.stack)),
        )

    def _proc_show(self, func: str) -> Callable[[], str | int]:
        sym = self._vmlinux_func(func)

        def show() -> str | int:
            seq: list[str] = []
            err = self.call(self.sched.current, sym, seq)
            # seq_read_iter(): a show() below 0 fails the read with that
            # error; above 0 (SEQ_SKIP) drops the record, and a
            # single_open() file then reads empty.
            if err < 0:
                return err
            return "" if err else "".join(seq)

        return show

    def _kallsyms_show(self) -> str:
        base = self.vmlinux.end
        data = [f"{base + 0x1000 * i:016x} d {name}" for i, name in enumerate(self.data_symbols)]
        return "\n".join(self.kallsyms.lines(data)) + "\n"

    def _kmsg_write(self, text: str) -> int:
        self.log.printk(4, text, origin="user")
        return len(text)

    def _dyndbg_write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                err = self.log.dyndbg.control(line)
                if err:
                    return err
        return len(text)

    # -- calls ---------------------------------------------------------------

    def resolve(
        self, task: Task, sym: Symbol, args: tuple[object, ...] = ()
    ) -> tuple[Symbol | None, Regs]:
        """Follow ftrace redirections from *sym*'s entry to the code that runs.

        Returns (the function whose body runs, regs); the function is None
        when a handler made the call return early (an override).
        """
        regs = Regs(sym, args)
        seen = 0
        while sym.fentry is not None:
            sym.fentry(task, regs)
            if regs.overridden:
                return None, regs
            if regs.ip is sym:
                break
            sym = regs.ip  # a redirect enters the new function at its own entry
            seen += 1
            if seen > 64:
                raise RuntimeError(f"ftrace redirect loop at {sym!r}")
        return sym, regs

    def call(self, task: Task, sym: Symbol, *args: object) -> int:
        """Call function *sym* from *task* and return its return value."""
        return self.invoke(task, sym, *args)[1]

    def invoke(self, task: Task, sym: Symbol, *args: object) -> tuple[Symbol | None, int]:
        """Call *sym*; (the function whose body ran or None if overridden, return value)."""
        target, regs = self.resolve(task, sym, args)
        if target is None:
            result = regs.ret
        else:
            result = target.impl(CallContext(self, task, target), *args) if target.impl else 0
        for observer in self.call_observers:
            observer(task, sym, target, result)
        return target, result

    def sleep_in(self, task: Task, sym: Symbol, *args: object) -> Symbol | None:
        """Call *sym* from *task* and block inside it: the code that runs
        (after any redirection) stays on the task's stack."""
        target, _ = self.resolve(task, sym, args)
        if target is not None:
            task.stack.append(target)
        return target
