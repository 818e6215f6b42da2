"""The function tracer: /sys/kernel/tracing with current_tracer,
set_ftrace_filter, tracing_on and trace.

Its ftrace_ops has no IPMODIFY, so it shares a call site with a livepatch:
ftrace runs both handlers, the trace records the original function, and
the redirected call then enters the replacement, whose own call site is
traced too if the filter names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.kernel.errno import EINVAL
from klpsim.trace.ftrace import FtraceOps

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.symbols import Regs, Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.trace.ftrace import Ftrace

__all__ = ["FunctionTracer"]

TRACING = "/sys/kernel/tracing"
TRACE_HEADER = (
    "# tracer: {tracer}\n"
    "#\n"
    "# entries-in-buffer/entries-written: {n}/{n}   #P:{cpus}\n"
    "#\n"
    "#                                _-----=> irqs-off/BH-disabled\n"
    "#                               / _----=> need-resched\n"
    "#                              | / _---=> hardirq/softirq\n"
    "#                              || / _--=> preempt-depth\n"
    "#                              ||| / _-=> migrate-disable\n"
    "#                              |||| /     delay\n"
    "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
    "#              | |         |   |||||     |         |\n"
)


class FunctionTracer:
    """The ``function`` tracer and its tracefs files."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace):
        self.kernel = kernel
        self.ftrace = ftrace
        self.tracer = "nop"
        self.tracing_on = True
        self.filter: list[str] = []
        self.entries: list[str] = []
        # No SAVE_REGS: with DYNAMIC_FTRACE_WITH_ARGS the function tracer's
        # site shows no R (lpc26-truth.md, row N: "1:none").
        self.ops = FtraceOps("function_trace_ops", self._handler)
        fs = kernel.fs
        fs.create_file(
            f"{TRACING}/current_tracer", 0o644, lambda: self.tracer + "\n", self._set_tracer
        )
        fs.create_file(f"{TRACING}/available_tracers", 0o444, lambda: "function nop\n")
        fs.create_file(
            f"{TRACING}/tracing_on",
            0o644,
            lambda: f"{int(self.tracing_on)}\n",
            self._set_tracing_on,
        )
        fs.create_file(f"{TRACING}/set_ftrace_filter", 0o644, self._show_filter, self._set_filter)
        fs.create_file(f"{TRACING}/trace", 0o644, self._show_trace, self._clear)
        fs.create_file(f"{TRACING}/available_filter_functions", 0o444, self._available)

    def _handler(self, task: Task, ip: Symbol, ops: FtraceOps, regs: Regs) -> None:
        if not self.tracing_on:
            return
        t = self.kernel.clock.now
        parent = task.stack[-1].name if task.stack else "do_syscall_64"
        self.entries.append(
            f"{task.comm[-16:]:>16}-{task.pid:<7} [{task.cpu:03d}] ..... "
            f"{t // 10**9:5d}.{t // 1000 % 10**6:06d}: {ip.name} <-{parent}"
        )

    def _available(self) -> str:
        return "".join(
            f"{s.name}\n" if s.owner.name == "vmlinux" else f"{s.name} [{s.owner.name}]\n"
            for obj in self.kernel.kallsyms.objects.values()
            for s in obj.symbols
            if s.ftrace_loc
        )

    def _reregister(self) -> int:
        if self.ops.enabled:
            self.ftrace.unregister_ftrace_function(self.ops)
        if self.tracer != "function":
            return 0
        self.ops.filter = self._resolve(self.filter)
        return self.ftrace.register_ftrace_function(self.ops)

    def _resolve(self, names: list[str]) -> list[Symbol]:
        syms: list[Symbol] = []
        for obj in self.kernel.kallsyms.objects.values():
            for name in names:
                syms.extend(s for s in obj.find(name) if s.ftrace_loc)
        return syms

    def _set_tracer(self, text: str) -> int:
        name = text.strip()
        if name not in ("function", "nop"):
            return -EINVAL
        self.tracer = name
        ret = self._reregister()
        return ret or len(text)

    def _set_tracing_on(self, text: str) -> int:
        value = text.strip()
        if value not in ("0", "1"):
            return -EINVAL
        self.tracing_on = value == "1"
        return len(text)

    def _show_filter(self) -> str:
        if not self.filter:
            return "#### all functions enabled ####\n"
        return "".join(f"{name}\n" for name in self.filter)

    def _set_filter(self, text: str) -> int:
        names = text.split()
        if names and not self._resolve(names):
            return -EINVAL
        self.filter = names
        ret = self._reregister()
        return ret or len(text)

    def _show_trace(self) -> str:
        header = TRACE_HEADER.format(
            tracer=self.tracer, n=len(self.entries), cpus=self.kernel.sched.nr_cpus
        )
        return header + "".join(e + "\n" for e in self.entries)

    def _clear(self, text: str) -> int:
        self.entries.clear()
        return len(text)
