"""The simulated vmlinux: a small symbol table with working function bodies.

Functions backed by /proc files (``cmdline_proc_show``,
``meminfo_proc_show``, ``version_proc_show``) produce their file's text,
so a patch on them shows in ``cat``. ``__x64_sys_getpid`` returns the
caller's pid, ``__x64_sys_syncfs`` what syncfs(-1) returns (-EBADF). The
rest are names that task stacks and scenarios use. A few static functions
share a name, so that ``old_sympos`` can be exercised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.kernel.errno import EBADF
from klpsim.kernel.symbols import VMLINUX_BASE, FuncBody, ObjectFile

if TYPE_CHECKING:
    from klpsim.kernel.machine import CallContext

__all__ = ["build_vmlinux", "PROC_SHOW", "SYSCALL_ALIASES"]

PROC_SHOW = {
    "cmdline_proc_show": "/proc/cmdline",
    "meminfo_proc_show": "/proc/meminfo",
    "version_proc_show": "/proc/version",
    "loadavg_proc_show": "/proc/loadavg",
    "uptime_proc_show": "/proc/uptime",
}
"""The single-record /proc files (proc_create_single()) and the show
function behind each: {function: file}. Real on every kernel, so the fuzzer
and the C generator patch them too."""

MEMINFO = (
    "MemTotal:        2014880 kB\n"
    "MemFree:         1823404 kB\n"
    "MemAvailable:    1851292 kB\n"
    "Buffers:               0 kB\n"
    "Cached:            47856 kB\n"
)

# Frames that task stacks are made of; none of them is ever patched.
SCHED_FUNCS = (
    "ret_from_fork",
    "kthread",
    "worker_thread",
    "process_one_work",
    "schedule",
    "schedule_timeout",
    "msleep",
    "do_idle",
    "do_syscall_64",
    "entry_SYSCALL_64",
    "do_wait",
    "kernel_wait4",
    "__x64_sys_wait4",
    "ep_poll",
    "do_epoll_wait",
    "__x64_sys_epoll_wait",
    "smpboot_thread_fn",
    "rcu_gp_kthread",
    "do_nanosleep",
    "hrtimer_nanosleep",
    "__x64_sys_nanosleep",
    "pipe_read",
    "vfs_read",
    "ksys_read",
    "__x64_sys_read",
    "seq_read_iter",
    "proc_reg_read_iter",
)

# Other real vmlinux functions that scenarios may patch or probe.
OTHER_FUNCS = (
    "__x64_sys_getppid",
    "__x64_sys_uname",
    "__x64_sys_sync",
    "__x64_sys_open",
    "__x64_sys_openat",
    "__x64_sys_close",
    "__x64_sys_write",
    "__x64_sys_mmap",
    "__x64_sys_clone",
    "__x64_sys_kill",
    "do_sys_openat2",
    "vfs_write",
    "vfs_open",
    "should_fail_alloc_page",
    "should_failslab",
    "security_file_open",
    "security_bpf",
    "security_task_kill",
    "proc_pid_status",
    "stat_open",
    "show_interrupts",
    "cpuinfo_open",
    "filemap_read",
    "tcp_sendmsg",
    "tcp_v4_connect",
    "kmalloc_trace",
    "kfree",
)

# Static functions that exist twice (sympos 1 and 2). m_show is the seq_file
# show function of /proc/modules (kernel/module/procfs.c) and of /proc/mounts
# (fs/namespace.c): the replace-set kernel has exactly these two, and a
# generated replacement of the same type is safe on it (modgen.py).
DUPLICATE_FUNCS = ("init_once", "show_device", "m_show")

NOTRACE_FUNCS = ("__schedule", "native_safe_halt")

SYSCALL_ALIASES = frozenset({"__x64_sys_getpid", "__x64_sys_getppid", "__x64_sys_sync"})
"""Entry points of SYSCALL_DEFINE0 syscalls: x86's __SYS_STUB0() makes each
an ``__alias`` of ``__do_sys_NAME``, so it has kallsyms and ftrace entries
but no DWARF, hence no BTF FUNC of its own (measured: Debian's 6.1 and
6.12 BTF has __do_sys_getppid, not __x64_sys_getppid)."""

# Architecture code at the end of the text: arch/x86/lib/error-inject.c's
# just_return_func, where an error-injection override sends a call (its body
# is set by trace/error_inject.py).
ARCH_FUNCS = ("just_return_func",)


def _seq_puts(text: str) -> FuncBody:
    def show(ctx: CallContext, seq: list[str]) -> int:
        seq.append(text)
        return 0

    return show


def _sys_getpid(ctx: CallContext, *args: object) -> int:
    return ctx.task.pid


def build_vmlinux(
    cmdline: str, version: str, extra_funcs: int = 0, lsm_hooks: bool = True
) -> ObjectFile:
    """Lay out vmlinux's functions (kallsyms order is address order);
    without *lsm_hooks* (CONFIG_SECURITY) there are no ``security_*``."""
    vm = ObjectFile("vmlinux", VMLINUX_BASE)
    vm.add("__x64_sys_getpid", _sys_getpid)
    for name in SCHED_FUNCS + OTHER_FUNCS:
        if lsm_hooks or not name.startswith("security_"):
            vm.add(name, lambda ctx, *a: 0)
    for name in DUPLICATE_FUNCS:
        vm.add(name, lambda ctx, *a: 0)
    for name in NOTRACE_FUNCS:
        vm.add(name, lambda ctx, *a: 0, notrace=True)
    for name in DUPLICATE_FUNCS:
        vm.add(name, lambda ctx, *a: 0)
    # fs/proc/*.c in link (file name) order, after both m_show (kernel/ and
    # fs/namespace.c), as on Debian's 6.1 and 6.12 and the replace-set
    # kernel: enabled_functions and kallsyms list them in address order
    # (found by klpsim fuzz --kernel 6.12 --seed 1012).
    vm.add("cmdline_proc_show", _seq_puts(cmdline + "\n"), size=0x30)  # as Debian builds it
    vm.add("loadavg_proc_show", _seq_puts("0.00 0.00 0.00 1/64 1000\n"))
    vm.add("meminfo_proc_show", _seq_puts(MEMINFO))
    vm.add("uptime_proc_show", _seq_puts("3.14 5.92\n"))
    vm.add("version_proc_show", _seq_puts(version + "\n"))
    for i in range(extra_funcs):
        vm.add(f"klpsim_func_{i}", lambda ctx, *a: 0)
    for name in ARCH_FUNCS:
        vm.add(name, lambda ctx, *a: 0, notrace=True)
    # Last, so that no other function moves: syncfs(2), which the real
    # kernel's "call" makes as syncfs(-1), a syscall with its own BTF.
    vm.add("__x64_sys_syncfs", lambda ctx, *a: -EBADF)
    return vm
