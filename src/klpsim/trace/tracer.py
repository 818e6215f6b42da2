"""The tracing core (kernel/trace/trace.c) and its two function tracers:
``function`` (trace_functions.c) and ``function_graph``
(trace_functions_graph.c, on fgraph.c).

Files under /sys/kernel/tracing: current_tracer, available_tracers,
tracing_on, set_ftrace_filter, set_graph_function, trace, error_log and
available_filter_functions. ``>`` opens with O_TRUNC: set_ftrace_filter
and set_graph_function start from an empty list (ftrace_regex_open(), the
new hash is applied when the file is released, even after a write that
failed), trace and error_log are cleared; ``>>`` appends. An empty
set_ftrace_filter means every function.

Neither tracer's ftrace_ops has IPMODIFY, so both share a call site with a
livepatch and record the original function: the function tracer logs
``func <-parent`` from its handler; the graph tracer's entry hook runs at
the original's __fentry__ and the livepatch's redirect is a tail call, so
the new function, traced too if the filter names it, is nested inside it
(``cmdline_proc_show() {`` / ``livepatch_cmdline_proc_show [mod]();`` /
``}``), as Debian's 6.12 prints it. The model's calls take no time: every
duration reads 0.000 us.

Other events (kprobe events, trace/trace_kprobe.py) go to the same buffer;
the graph tracer prints them as ``/* ... */`` comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from klpsim.kernel.errno import EINVAL
from klpsim.trace.ftrace import FtraceOps

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.symbols import Regs, Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.trace.ftrace import Ftrace

__all__ = ["FunctionTracer", "TraceEntry", "TRACERS"]

TRACING = "/sys/kernel/tracing"
TRACERS = ("function_graph", "function", "nop")
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
GRAPH_HEADER = (
    "# tracer: function_graph\n"
    "#\n"
    "# CPU  DURATION                  FUNCTION CALLS\n"
    "# |     |   |                     |   |   |   |\n"
)
TRACE_GRAPH_INDENT = 2
TRACING_LOG_ERRS_MAX = 8
CMD_PREFIX = "  Command: "
# trace_find_mark(): the overhead mark before a duration (ns thresholds)
MARKS = ((10**9, "$"), (10**8, "@"), (10**7, "*"), (10**6, "#"), (10**5, "!"), (10**4, "+"))


@dataclass
class TraceEntry:
    """One ring-buffer event."""

    kind: str
    """``func`` (function tracer), ``event`` (a trace event such as a kprobe
    event), ``gent``/``gret`` (function_graph entry and return)."""
    comm: str
    pid: int
    cpu: int
    ts: int
    """local_clock() in ns."""
    ctx: str
    """The irqs-off/need-resched/hardirq/preempt-depth/migrate-disable columns."""
    text: str
    """``func <-parent`` or the event's ``name: (...)``."""
    sym: Symbol | None = None
    depth: int = 0
    calltime: int = 0


@dataclass
class _ErrLog:
    ts: int
    loc: str
    text: str
    cmd: str
    pos: int


class FunctionTracer:
    """The global trace array: its buffer, the ``function`` and
    ``function_graph`` tracers, the filters and error_log."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace):
        self.kernel = kernel
        self.ftrace = ftrace
        self.tracer = "nop"
        self.tracing_on = True
        self.filter: list[str] = []
        self.graph_filter: list[str] = []  # set_graph_function
        self.buffer: list[TraceEntry] = []
        self.err_log: list[_ErrLog] = []
        # No SAVE_REGS: with DYNAMIC_FTRACE_WITH_ARGS neither tracer's site
        # shows an R (lpc26-truth.md, rows G and N: "1:none").
        self.ops = FtraceOps("function_trace_ops", self._function_handler)
        self.ops.func_name = "function_trace_call"
        self.graph_ops = FtraceOps("graph_ops", self._graph_entry)
        self.graph_ops.func_name = "ftrace_graph_func"
        self._graph_stack: dict[int, list[TraceEntry]] = {}  # pid -> open entries
        kernel.call_observers.append(self._graph_return)
        fs = kernel.fs
        fs.create_file(
            f"{TRACING}/current_tracer", 0o644, lambda: self.tracer + "\n", self._set_tracer
        )
        fs.create_file(f"{TRACING}/available_tracers", 0o444, lambda: " ".join(TRACERS) + "\n")
        fs.create_file(
            f"{TRACING}/tracing_on",
            0o644,
            lambda: f"{int(self.tracing_on)}\n",
            self._set_tracing_on,
        )
        fs.create_file(
            f"{TRACING}/set_ftrace_filter",
            0o644,
            lambda: self._show_list(self.filter),
            lambda text: self._add_filter(self.filter, text),
            lambda trunc: self._open_filter(self.filter, trunc),
        )
        fs.create_file(
            f"{TRACING}/set_graph_function",
            0o644,
            lambda: self._show_list(self.graph_filter),
            lambda text: self._add_filter(self.graph_filter, text),
            lambda trunc: self._open_filter(self.graph_filter, trunc),
        )
        fs.create_file(f"{TRACING}/trace", 0o644, self._show_trace, len, self._open_trace)
        fs.create_file(f"{TRACING}/error_log", 0o644, self._show_err_log, len, self._open_err_log)
        fs.create_file(f"{TRACING}/available_filter_functions", 0o444, self._available)
        kernel.exports["tracing"] = self

    # -- the buffer -------------------------------------------------------------------

    def record(self, task: Task, kind: str, text: str, ctx: str = ".....") -> None:
        """trace_buffer_lock_reserve() + commit, when tracing_on."""
        if not self.tracing_on:
            return
        self.buffer.append(
            TraceEntry(kind, task.comm, task.pid, task.cpu, self.kernel.clock.now, ctx, text)
        )

    def context(self, sym: Symbol) -> str:
        """The context columns of an event recorded from *sym*'s ftrace
        handlers: through the list function (several ops on the site) the
        preempt depth reads 1, as Debian's kernels show."""
        return "...1." if len(self.ftrace.ops_on(sym)) > 1 else "....."

    @property
    def entries(self) -> list[str]:
        """The function tracer's lines without the header (``trace`` minus it)."""
        return [self._line(e) for e in self.buffer if e.kind in ("func", "event")]

    # -- the function tracer --------------------------------------------------------------

    def _function_handler(self, task: Task, ip: Symbol, ops: FtraceOps, regs: Regs) -> None:
        """function_trace_call(): records the ip argument, never regs->ip."""
        parent = task.stack[-1].name if task.stack else "do_syscall_64"
        self.record(task, "func", f"{ip.name} <-{parent}", self.context(ip))

    # -- the function_graph tracer -------------------------------------------------------

    def _graph_wanted(self, task: Task, ip: Symbol) -> bool:
        """trace_graph_entry(): with set_graph_function, only those functions
        and what they call are graphed."""
        if not self.graph_filter or self._graph_stack.get(task.pid):
            return True
        return ip.name in self.graph_filter

    def _graph_entry(self, task: Task, ip: Symbol, ops: FtraceOps, regs: Regs) -> None:
        """ftrace_graph_func(): hijack the return address, record the entry."""
        if not self._graph_wanted(task, ip):
            return
        stack = self._graph_stack.setdefault(task.pid, [])
        now = self.kernel.clock.now
        entry = TraceEntry(
            "gent", task.comm, task.pid, task.cpu, now, ".....", "", ip, len(stack), now
        )
        stack.append(entry)
        if self.tracing_on:
            self.buffer.append(entry)

    def _graph_return(self, task: Task, sym: Symbol, target: Symbol | None, result: int) -> None:
        """return_to_handler(): the new function returns before the original
        whose return address it inherited."""
        stack = self._graph_stack.get(task.pid)
        if not stack:
            return
        order = (target, sym) if target is not None and target is not sym else (sym,)
        for func in order:
            if stack and stack[-1].sym is func:
                ent = stack.pop()
                if self.tracing_on:
                    self.buffer.append(
                        TraceEntry(
                            "gret",
                            task.comm,
                            task.pid,
                            task.cpu,
                            self.kernel.clock.now,
                            ".....",
                            "",
                            func,
                            ent.depth,
                            ent.ts,
                        )
                    )

    # -- registration -------------------------------------------------------------------------

    def _resolve(self, names: list[str]) -> list[Symbol]:
        """The traceable functions *names* match (a name may be a glob). An
        object with a real symbol table (``--kallsyms``) looks a name up in
        it; there a glob matches only the model's own functions the table
        lists, since the table's other symbols are made when looked up."""
        syms: list[Symbol] = []
        for obj in self.kernel.kallsyms.objects.values():
            if obj.source is None:
                syms.extend(
                    s
                    for s in obj.symbols
                    if s.ftrace_loc and any(fnmatchcase(s.name, n) for n in names)
                )
                continue
            for name in names:
                if any(c in name for c in "*?["):
                    found = [
                        s
                        for s in obj.symbols
                        if fnmatchcase(s.name, name) and s in obj.find(s.name)
                    ]
                else:
                    found = obj.find(name)
                syms.extend(s for s in found if s.ftrace_loc and s not in syms)
        return syms

    def _reregister(self) -> int:
        """tracer init/reset: the current tracer's ops with set_ftrace_filter."""
        for ops in (self.ops, self.graph_ops):
            if ops.enabled:
                self.ftrace.unregister_ftrace_function(ops)
        self._graph_stack.clear()
        if self.tracer == "nop":
            return 0
        ops = self.ops if self.tracer == "function" else self.graph_ops
        ops.filter = self._resolve(self.filter)
        return self.ftrace.register_ftrace_function(ops)

    def _set_tracer(self, text: str) -> int:
        """tracing_set_tracer(): a new tracer starts with an empty buffer."""
        name = text.strip()
        if name not in TRACERS:
            return -EINVAL
        if name != self.tracer:
            self.tracer = name
            self.buffer.clear()
            ret = self._reregister()
            if ret:
                return ret
        return len(text)

    def _set_tracing_on(self, text: str) -> int:
        value = text.strip()
        if value not in ("0", "1"):
            return -EINVAL
        self.tracing_on = value == "1"
        return len(text)

    # -- set_ftrace_filter / set_graph_function ---------------------------------------------

    def _show_list(self, names: list[str]) -> str:
        if not names:
            return "#### all functions enabled ####\n"
        out = []
        for sym in self._resolve(names):
            mod = "" if sym.owner.name == "vmlinux" else f" [{sym.owner.name}]"
            out.append(f"{sym.name}{mod}\n")
        return "".join(out)

    def _open_filter(self, names: list[str], trunc: bool) -> int:
        """ftrace_regex_open() with O_TRUNC: an empty list, applied at release."""
        if trunc and names:
            names.clear()
            self._apply(names)
        return 0

    def _add_filter(self, names: list[str], text: str) -> int:
        """ftrace_regex_write(): each word (a name or glob, ``!`` to remove)
        must match a traceable function, else -EINVAL."""
        for word in text.split():
            remove = word.startswith("!")
            found = [s.name for s in self._resolve([word.lstrip("!")])]
            if not found:
                return -EINVAL
            for name in found:
                if remove and name in names:
                    names.remove(name)
                elif not remove and name not in names:
                    names.append(name)
        self._apply(names)
        return len(text)

    def _apply(self, names: list[str]) -> None:
        """The new set_ftrace_filter, in place: the tracer's ops keeps its
        position in ftrace_ops_list."""
        if names is self.filter and self.tracer != "nop":
            ops = self.ops if self.tracer == "function" else self.graph_ops
            self.ftrace.ftrace_set_filter(ops, self._resolve(self.filter))

    # -- trace --------------------------------------------------------------------------------

    def _open_trace(self, trunc: bool) -> int:
        """tracing_open() with O_TRUNC resets the buffer."""
        if trunc:
            self.buffer.clear()
        return 0

    @staticmethod
    def _ts(ns: int) -> str:
        return f"{ns // 10**9:5d}.{ns // 1000 % 10**6:06d}"

    def _line(self, e: TraceEntry) -> str:
        return f"{e.comm[-16:]:>16}-{e.pid:<7} [{e.cpu:03d}] {e.ctx} {self._ts(e.ts)}: {e.text}"

    def _show_trace(self) -> str:
        if self.tracer == "function_graph":
            return GRAPH_HEADER + "".join(line + "\n" for line in self._graph_lines())
        entries = [e for e in self.buffer if e.kind in ("func", "event")]
        header = TRACE_HEADER.format(
            tracer=self.tracer, n=len(entries), cpus=self.kernel.sched.nr_cpus
        )
        return header + "".join(self._line(e) + "\n" for e in entries)

    def _cpu(self, cpu: int) -> str:
        width = len(str(self.kernel.sched.nr_cpus - 1))
        return f" {cpu:>{width}d}) "

    @staticmethod
    def _duration(ns: int) -> str:
        """print_graph_duration() and trace_print_graph_duration()."""
        mark = next((m for limit, m in MARKS if ns > limit), " ")
        usecs = str(ns // 1000)
        text = usecs
        if len(usecs) < 7:
            text += "." + f"{ns % 1000:03d}"[: 7 - len(usecs)]
        return f"{mark} {text} us " + " " * max(0, 8 - len(text)) + "|  "

    @staticmethod
    def _fname(sym: Symbol) -> str:
        """%ps: ``name`` or ``name [mod]``."""
        return sym.name if sym.owner.name == "vmlinux" else f"{sym.name} [{sym.owner.name}]"

    def _graph_lines(self) -> list[str]:
        """print_graph_function(): an entry directly followed by its return
        is a leaf ``func();``, else ``func() {`` ... ``}``; other events are
        comments at the current depth."""
        out: list[str] = []
        buf = self.buffer
        depth = 0
        i = 0
        while i < len(buf):
            e = buf[i]
            cpu = self._cpu(e.cpu)
            sym = e.sym
            if e.kind == "gent" and sym is not None:
                nxt = buf[i + 1] if i + 1 < len(buf) else None
                indent = " " * (e.depth * TRACE_GRAPH_INDENT)
                if nxt is not None and nxt.kind == "gret" and nxt.sym is sym:
                    out.append(f"{cpu}{self._duration(nxt.ts - e.ts)}{indent}{self._fname(sym)}();")
                    depth = e.depth - 1
                    i += 2
                    continue
                out.append(f"{cpu}              |  {indent}{self._fname(sym)}() {{")
                depth = e.depth
            elif e.kind == "gret":
                indent = " " * (e.depth * TRACE_GRAPH_INDENT)
                out.append(f"{cpu}{self._duration(e.ts - e.calltime)}{indent}}}")
                depth = e.depth - 1
            elif e.kind == "event":
                indent = " " * ((depth + 1) * TRACE_GRAPH_INDENT) if depth > 0 else ""
                out.append(f"{cpu}              |  {indent}/* {e.text} */")
            i += 1
        return out

    # -- error_log --------------------------------------------------------------------------------

    def tracing_log_err(self, loc: str, cmd: str, text: str, pos: int) -> None:
        """tracing_log_err(): keep the last TRACING_LOG_ERRS_MAX errors."""
        if len(self.err_log) >= TRACING_LOG_ERRS_MAX:
            self.err_log.pop(0)
        self.err_log.append(_ErrLog(self.kernel.clock.now, loc, text, cmd, pos))

    def _show_err_log(self) -> str:
        out = []
        for err in self.err_log:
            out.append(
                f"[{self._ts(err.ts)}] {err.loc}: error: {err.text}\n"
                f"{CMD_PREFIX}{err.cmd}\n" + " " * (len(CMD_PREFIX) + err.pos) + "^\n"
            )
        return "".join(out)

    def _open_err_log(self, trunc: bool) -> int:
        if trunc:
            self.err_log.clear()
        return 0

    def _available(self) -> str:
        return "".join(
            f"{s.name}\n" if s.owner.name == "vmlinux" else f"{s.name} [{s.owner.name}]\n"
            for obj in self.kernel.kallsyms.objects.values()
            for s in obj.symbols
            if s.ftrace_loc
        )
