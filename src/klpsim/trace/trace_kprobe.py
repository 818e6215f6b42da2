"""Kprobe events: /sys/kernel/tracing/kprobe_events (kernel/trace/trace_kprobe.c,
trace_probe.c, trace_dynevent.c).

Each line written defines or removes an event, as trace_parse_run_command()
and create_or_delete_trace_kprobe() take it::

    p[:[GRP/|GRP.]EVENT] [MOD:]SYM[+OFFS]|SYM%return [FETCHARGS]
    r[MAXACTIVE][:[GRP/|GRP.]EVENT] [MOD:]SYM[+0] [FETCHARGS]
    -:[GRP/]EVENT [SYM[+OFFS] [NAME=ARG]...]

``#`` starts a comment; an empty line does nothing; the first bad line
stops the write with its errno, after the lines before it took effect.
``>`` opens the file with O_TRUNC: every kprobe event is removed first,
and the open fails with -EBUSY (nothing removed) while any is enabled.
A definition whose name is taken appends a probe to that event (a
multi-probe event) when the type and the arguments match. Errors name
their place in error_log (tracing_log_err(): ``[TS] trace_kprobe: error:
TEXT``, the command, a caret), as trace_probe_log_err() does.

A new event is registered with its kprobe disabled (``[DISABLED]`` in
kprobes/list); ``events/GRP/EVENT/enable`` arms it through enable_kprobe(),
which is where an aggregated probe at the same address decides which
ftrace_ops it lands on (trace/kprobes.py). Its handler, kprobe_dispatcher(),
records ``EVENT: (SYM+OFF/SIZE)`` (a return probe ``EVENT: (CALLER+OFF/SIZE
<- SYM)``) and always returns 0: it never moves the ip.

Fetch arguments: ``$retval`` (return probes only; an ``int`` since 6.5's
BTF typing, the default hex x64 before), ``$comm``/``$COMM``,
each optionally named ``NAME=``. Others need values the model does not
have (registers, memory, BTF) and are refused with
:class:`~klpsim.kernel.fs.NotModelled`.

Version differences (profile hooks): "tracing/kprobes: Add symbol counting
check when module loads" (6.10) moved the unknown/ambiguous symbol check
into validate_probe_symbol() and made both errors -EINVAL (6.1: -ENOENT
and -EADDRNOTAVAIL); "tracing/probes: Add fprobe events for tracing
function entry and exit" (6.5) renamed MAXACT_NO_KPROBE ("Maxactive is not
for kprobe") to BAD_MAXACT_TYPE ("Maxactive is only for function exit").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.kernel.errno import (
    E2BIG,
    EADDRNOTAVAIL,
    EBUSY,
    ECANCELED,
    EEXIST,
    EILSEQ,
    EINVAL,
    ENOENT,
    ENOMEM,
)
from klpsim.kernel.fs import NotModelled
from klpsim.kernel.module import MODULE_STATE_COMING
from klpsim.kernel.params import kstrtoint, kstrtoull
from klpsim.kernel.printk import KERN_INFO, KERN_WARNING

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Regs, Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.trace.kprobes import Kprobe, Kprobes
    from klpsim.trace.tracer import FunctionTracer

__all__ = ["TraceKprobes", "TraceKprobe", "TraceProbeEvent", "TP_ERRORS", "not_modelled"]

TRACING = "/sys/kernel/tracing"
KPROBE_EVENT_SYSTEM = "kprobes"
MAX_EVENT_NAME_LEN = 64
MAX_ARG_NAME_LEN = 32
MAX_TRACE_ARGS = 128
KRETPROBE_MAXACTIVE_MAX = 4096
FIRST_EVENT_ID = 2000  # the model's first dynamic event id

# trace_probe.h ERRORS: the texts error_log shows.
TP_ERRORS = {
    "BAD_MAXACT_TYPE": "Maxactive is only for function exit",
    "MAXACT_NO_KPROBE": "Maxactive is not for kprobe",
    "BAD_MAXACT": "Invalid maxactive number",
    "MAXACT_TOO_BIG": "Maxactive is too big",
    "BAD_PROBE_ADDR": "Invalid probed address or symbol",
    "NON_UNIQ_SYMBOL": "The symbol is not unique",
    "BAD_RETPROBE": "Retprobe address must be an function entry",
    "BAD_ADDR_SUFFIX": "Invalid probed address suffix",
    "NO_GROUP_NAME": "Group name is not specified",
    "GROUP_TOO_LONG": "Group name is too long",
    "BAD_GROUP_NAME": "Group name must follow the same rules as C identifiers",
    "NO_EVENT_NAME": "Event name is not specified",
    "EVENT_TOO_LONG": "Event name is too long",
    "BAD_EVENT_NAME": "Event name must follow the same rules as C identifiers",
    "EVENT_EXIST": "Given group/event name is already used by another event",
    "RETVAL_ON_PROBE": "$retval is not available on probe",
    "ARG_NAME_TOO_LONG": "Argument name is too long",
    "NO_ARG_NAME": "Argument name is not specified",
    "BAD_ARG_NAME": "Argument name must follow the same rules as C identifiers",
    "USED_ARG_NAME": "This argument name is already used",
    "NO_ARG_BODY": "No argument expression",
    "BAD_INSN_BNDRY": "Probe point is not an instruction boundary",
    "FAIL_REG_PROBE": "Failed to register probe event",
    "DIFF_PROBE_TYPE": "Probe type is different from existing probe",
    "DIFF_ARG_TYPE": "Argument type or name is different from existing probe",
    "SAME_PROBE": "There is already the exact same probe event",
}
RESERVED_FIELD_NAMES = ("common_type", "common_flags", "common_preempt_count", "common_pid",
                        "common_tgid", "__probe_ip", "__probe_ret_ip", "__probe_func")  # fmt: skip


class _ParseError(Exception):
    """parse_error / error in __trace_kprobe_create(): the errno to return."""

    def __init__(self, errno: int):
        super().__init__(errno)
        self.errno = errno


def _is_good_name(name: str, hash_ok: bool = False) -> bool:
    """__is_good_name(): a C identifier (and ``-`` for a group)."""
    if not name:
        return False

    def ok(c: str, first: bool) -> bool:
        alpha = c.isascii() and c.isalpha()
        return alpha or c == "_" or (hash_ok and c == "-") or (not first and c.isdigit())

    return ok(name[0], True) and all(ok(c, False) for c in name[1:])


def _kstrtoul(text: str, base: int = 0) -> int | None:
    """kstrtoul() (an unsigned long is 64 bits): the value, or None."""
    value = kstrtoull(text, base)
    return None if value < 0 else value


def _kstrtol(text: str) -> int | None:
    """kstrtol(s, 0): the value, or None."""
    err, value = kstrtoint(text, -(2**63), 2**63 - 1)
    return None if err else value


FETCHABLE = ("$retval", "$comm", "$COMM")
"""The fetch arguments the model has values for."""


def _not_modelled_dyn(line: str) -> str | None:
    if line.lstrip()[:1] not in ("", "p", "r", "-", "!"):
        return f"dynamic_events: only kprobe events are modelled: {line!r}"
    return None


def _not_modelled_addr(word: str) -> str | None:
    if _kstrtoul(word) is not None:
        return f"kprobe_events: probes on a raw address are not modelled: {word}"
    return None


def _not_modelled_arg(text: str, body: str) -> str | None:
    if body and body not in FETCHABLE:
        return (
            f"kprobe_events: fetch argument '{text}' is not modelled "
            "(only $retval, $comm and $COMM, optionally NAME=...)"
        )
    return None


def not_modelled(text: str, dynamic: bool = False) -> str | None:
    """Why the model cannot carry out a write of *text* to kprobe_events
    (*dynamic*: dynamic_events), found before anything is written: a script
    is refused before its first line rather than stopped half-way. The
    write itself raises NotModelled for the same reasons."""
    for line in text.split("\n"):
        line = line.split("#", 1)[0]
        why = _not_modelled_dyn(line) if dynamic else None
        argv = line.split()
        if why is None and len(argv) >= 2 and argv[0][:1] in ("p", "r"):
            why = _not_modelled_addr(argv[1])
            for arg in argv[2:]:
                why = why or _not_modelled_arg(arg, arg.split("=", 1)[-1])
        if why is not None:
            return why
    return None


class ProbeArg:
    """A ``struct probe_arg``: NAME=COMM and how to fetch it."""

    def __init__(self, name: str, comm: str):
        self.name = name
        self.comm = comm

    def fetch(self, task: Task, retval: int, btf: bool) -> str:
        """The value as print_type_*() prints it."""
        if self.comm in ("$comm", "$COMM"):
            return f'"{task.comm}"'
        if btf:
            return str(retval)  # the BTF return type of the show functions: int
        return f"{retval % 2**64:#x}"  # the default type, x64


class TraceProbeEvent:
    """A ``struct trace_probe_event``: the event (GROUP/NAME) its probes share."""

    def __init__(self, group: str, name: str, is_return: bool, event_id: int):
        self.group = group
        self.name = name
        self.is_return = is_return
        self.id = event_id
        self.probes: list[TraceKprobe] = []
        self.enabled = False  # TP_FLAG_TRACE


class TraceKprobe:
    """A ``struct trace_kprobe``: one probe (a kprobe or kretprobe) of an event."""

    def __init__(self, owner: TraceKprobes, event: TraceProbeEvent, symbol: str, offset: int,
                 is_return: bool, maxactive: int, args: list[ProbeArg]):  # fmt: skip
        self.owner = owner
        self.event = event
        self.symbol = symbol  # as written, "mod:func" included
        self.offset = offset
        self.is_return = is_return
        self.maxactive = maxactive
        self.args = args
        self.nhit = 0
        modname, _, func = symbol.rpartition(":")
        self.kp: Kprobe = owner.kprobes.new_kprobe(
            func,
            pre_handler=self._dispatcher,
            owner=f"trace_kprobe:{event.group}/{event.name}",
            module=modname or None,
            offset=offset,
            is_return=is_return,
        )

    @property
    def registered(self) -> bool:
        """trace_kprobe_is_registered(): its kprobe is in kprobe_table."""
        return (
            self.kp._kprobes is not None and self.kp._kprobes._get_valid_kprobe(self.kp) is not None
        )

    def place(self) -> str:
        """``SYM`` or ``SYM+OFFS``, as kprobe_events shows and ``-:`` matches."""
        return f"{self.symbol}+{self.offset}" if self.offset else self.symbol

    def show(self) -> str:
        """trace_kprobe_show()."""
        head = "r" if self.is_return else "p"
        if self.is_return and self.maxactive:
            head += str(self.maxactive)
        args = "".join(f" {a.name}={a.comm}" for a in self.args)
        return f"{head}:{self.event.group}/{self.event.name} {self.place()}{args}\n"

    def _dispatcher(self, kp: Kprobe, regs: Regs, task: Task) -> int:
        """kprobe_dispatcher(): count, record (kprobe_trace_func()), return 0;
        for a return probe, pre_handler_kretprobe() arms the return hook."""
        assert kp.addr is not None
        if self.is_return:
            self.owner.pending.setdefault((task.pid, kp.addr), []).append(self)
            return 0
        self.nhit += 1
        if self.event.enabled:
            where = f"({self.owner.ps(kp.addr, kp.addr_off)})"
            self.owner.record(task, self, where, self.owner.tracing.context(kp.addr))
        return 0

    def returned(self, task: Task, func: Symbol, result: int) -> None:
        """kretprobe_dispatcher() -> kretprobe_trace_func()."""
        self.nhit += 1
        if self.event.enabled:
            # The rethook trampoline runs outside the ftrace list function.
            where = f"({self.owner.ps(self.owner.caller(task), 0)} <- {func.name})"
            self.owner.record(task, self, where, ".....", result)


class TraceKprobes:
    """The kprobe dynamic events of one kernel and their tracefs files."""

    def __init__(self, kernel: Kernel, kprobes: Kprobes, tracing: FunctionTracer,
                 validate_symbol: bool = True, maxact_err: str = "BAD_MAXACT_TYPE",
                 btf_retval: bool = True):  # fmt: skip
        self.kernel = kernel
        self.kprobes = kprobes
        self.tracing = tracing
        # 6.10+: validate_probe_symbol() (-EINVAL); before: the count check (-ENOENT, -EADDRNOTAVAIL)
        self.validate_symbol = validate_symbol
        self.maxact_err = maxact_err
        self.btf_retval = btf_retval  # fd26290ec89d (6.5): $retval typed by BTF
        self.dyn_events: list[TraceKprobe] = []  # dyn_event_list order
        self.events: dict[tuple[str, str], TraceProbeEvent] = {}
        self.pending: dict[tuple[int, Symbol], list[TraceKprobe]] = {}  # return hooks armed
        self._next_id = FIRST_EVENT_ID
        self._log: tuple[list[str], int] | None = None  # trace_probe_log: argv, index
        fs = kernel.fs
        fs.create_file(
            f"{TRACING}/kprobe_events", 0o644, self._show_events, self._write, self._open
        )
        fs.create_file(f"{TRACING}/dynamic_events", 0o644, self._show_events, self._write_dyn)
        fs.create_file(f"{TRACING}/kprobe_profile", 0o444, self._show_profile)
        kernel.modules.notifier.append(self._module_callback)
        kernel.call_observers.append(self._on_return)
        kernel.exports["trace_kprobe"] = self

    # -- error_log -------------------------------------------------------------------------

    def _log_set_index(self, index: int) -> None:
        if self._log is not None:
            self._log = (self._log[0], index)

    def _log_err(self, offset: int, err: str) -> None:
        """__trace_probe_log_err(): the command rebuilt from argv and a position."""
        if self._log is None:
            return
        argv, index = self._log
        pos = sum(len(a) + 1 for a in argv[:index])
        if index >= len(argv):
            pos, offset = sum(len(a) + 1 for a in argv), 0
        text = TP_ERRORS[err]
        self.tracing.tracing_log_err("trace_kprobe", " ".join(argv), text, pos + offset)

    def _fail(self, offset: int, err: str, errno: int = -EINVAL) -> _ParseError:
        self._log_err(offset, err)
        return _ParseError(errno)

    # -- writing kprobe_events ----------------------------------------------------------------

    def _open(self, trunc: bool) -> int:
        """probes_open(): O_TRUNC removes every kprobe event, or none if one is busy."""
        if trunc:
            return self.dyn_events_release_all()
        return 0

    def _write(self, text: str) -> int:
        """probes_write() -> trace_parse_run_command()."""
        for line in text.split("\n"):
            line = line.split("#", 1)[0]
            ret = self.create_or_delete(line)
            if ret:
                return ret
        return len(text)

    def _write_dyn(self, text: str) -> int:
        """dynamic_events: the same commands (only kprobe events are modelled)."""
        for line in text.split("\n"):
            line = line.split("#", 1)[0]
            why = _not_modelled_dyn(line)
            if why is not None:
                raise NotModelled(why)
            ret = self.create_or_delete(line)
            if ret:
                return ret
        return len(text)

    def create_or_delete(self, raw: str) -> int:
        """create_or_delete_trace_kprobe()."""
        if raw[:1] == "-":
            return self.dyn_event_release(raw)
        argv = raw.split()
        if not argv:
            return 0  # trace_probe_create(): argc == 0
        ret = self._create(argv)
        return -EINVAL if ret == -ECANCELED else ret

    def _create(self, argv: list[str]) -> int:
        try:
            return self.__trace_kprobe_create(argv)
        except _ParseError as e:
            return e.errno
        finally:
            self._log = None

    def __trace_kprobe_create(self, argv: list[str]) -> int:
        """__trace_kprobe_create(): parse, check, register; errors logged as the
        kernel logs them (positions included)."""
        kind = argv[0][0]
        if kind not in "pr" or len(argv) < 2:
            return -ECANCELED
        is_return = kind == "r"
        self._log = (list(argv), 0)
        head = argv[0]
        colon = head.find(":", 1)
        event: str | None = head[colon + 1 :] if colon >= 0 else None
        maxactive = 0
        if len(head) > 1 and head[1].isdigit():
            if not is_return:
                raise self._fail(1, self.maxact_err)
            digits = head[1:colon] if colon >= 0 else head[1:]
            if len(digits) > MAX_EVENT_NAME_LEN - 1:
                raise self._fail(1, "BAD_MAXACT")
            err, value = kstrtoint(digits, 0, 2**32 - 1)  # kstrtouint()
            if err or not value:
                raise self._fail(1, "BAD_MAXACT")
            if value > KRETPROBE_MAXACTIVE_MAX:
                raise self._fail(1, "MAXACT_TOO_BIG")
            maxactive = value

        why = _not_modelled_addr(argv[1])
        if why is not None:
            raise NotModelled(why)
        self._log_set_index(1)
        if "/" in argv[1] and ":" in argv[1]:
            return -ECANCELED  # an uprobe
        symbol = argv[1]
        if "%" in symbol:
            pct = symbol.index("%")
            if symbol[pct:] != "%return":
                raise self._fail(pct, "BAD_ADDR_SUFFIX")
            symbol = symbol[:pct]
            is_return = True
        cut = min((i for i in (symbol.find("+"), symbol.find("-")) if i >= 0), default=-1)
        offset = 0
        if cut >= 0:
            parsed = _kstrtol(symbol[cut:])
            symbol = symbol[:cut]
            if parsed is None or parsed < 0 or parsed > 0xFFFFFFFF:
                raise self._fail(0, "BAD_PROBE_ADDR")
            offset = parsed
        if self.validate_symbol:
            ret = self._validate_probe_symbol(symbol)
            if ret:
                raise self._fail(
                    0, "NON_UNIQ_SYMBOL" if ret == -EADDRNOTAVAIL else "BAD_PROBE_ADDR"
                )
        entry = self._kprobe_on_func_entry(symbol, offset)
        if entry == -EINVAL and is_return:
            raise self._fail(0, "BAD_RETPROBE")
        if not self.validate_symbol and ":" not in symbol:
            count = self._number_of_same_symbols(None, symbol)
            if count > 1:
                raise self._fail(0, "NON_UNIQ_SYMBOL", -EADDRNOTAVAIL)
            if count == 0:
                raise self._fail(0, "BAD_PROBE_ADDR", -ENOENT)

        self._log_set_index(0)
        group = KPROBE_EVENT_SYSTEM
        if event is not None:
            group, event = self._parse_event_name(event, colon + 1)
        if event is None:
            name = f"{'r' if is_return else 'p'}_{symbol}_{offset}"
            event = name[0] + "".join("_" if c in ":.*" else c for c in name[1:])

        args_text = argv[2:]
        if len(args_text) > MAX_TRACE_ARGS:
            return -E2BIG
        args: list[ProbeArg] = []
        for i, text in enumerate(args_text):
            self._log_set_index(i + 2)
            args.append(self._parse_probe_arg(text, i, args, is_return))
        if is_return and not maxactive:
            maxactive = max(10, 2 * self.kernel.sched.nr_cpus)  # register_kretprobe()
        ret = self._register_trace_kprobe(group, event, symbol, offset, is_return, maxactive, args)
        if ret:
            self._log_set_index(1)
            if ret == -EILSEQ:
                self._log_err(0, "BAD_INSN_BNDRY")
            elif ret == -ENOENT:
                self._log_err(0, "BAD_PROBE_ADDR")
            elif ret not in (-ENOMEM, -EEXIST):
                self._log_err(0, "FAIL_REG_PROBE")
        return ret

    def _parse_event_name(self, event: str, offset: int) -> tuple[str, str | None]:
        """traceprobe_parse_event_name(): ``GRP/EVENT`` or ``GRP.EVENT``."""
        group = KPROBE_EVENT_SYSTEM
        slash = event.find("/")
        if slash < 0:
            slash = event.find(".")
        if slash >= 0:
            if slash == 0:
                raise self._fail(offset, "NO_GROUP_NAME")
            if slash + 1 > MAX_EVENT_NAME_LEN:
                raise self._fail(offset, "GROUP_TOO_LONG")
            group = event[:slash]
            if not _is_good_name(group, hash_ok=True):
                raise self._fail(offset, "BAD_GROUP_NAME")
            offset += slash + 1
            event = event[slash + 1 :]
        if not event:
            if slash >= 0:
                return group, None
            raise self._fail(offset, "NO_EVENT_NAME")
        if len(event) >= MAX_EVENT_NAME_LEN:
            raise self._fail(offset, "EVENT_TOO_LONG")
        if not _is_good_name(event):
            raise self._fail(offset, "BAD_EVENT_NAME")
        return group, event

    def _parse_probe_arg(
        self, text: str, i: int, prev: list[ProbeArg], is_return: bool
    ) -> ProbeArg:
        """traceprobe_parse_probe_arg(), for the arguments the model can fetch."""
        eq = text.find("=")
        if eq >= 0:
            if eq > MAX_ARG_NAME_LEN:
                raise self._fail(0, "ARG_NAME_TOO_LONG")
            if eq == 0:
                raise self._fail(0, "NO_ARG_NAME")
            name, body, off = text[:eq], text[eq + 1 :], eq + 1
        else:
            name, body, off = f"arg{i + 1}", text, 0
        if not _is_good_name(name):
            raise self._fail(0, "BAD_ARG_NAME")
        if name in RESERVED_FIELD_NAMES or any(a.name == name for a in prev):
            raise self._fail(0, "USED_ARG_NAME")
        if not body:
            raise self._fail(off, "NO_ARG_BODY")
        if body == "$retval" and not is_return:
            raise self._fail(off, "RETVAL_ON_PROBE")
        why = _not_modelled_arg(text, body)
        if why is not None:
            raise NotModelled(why)
        return ProbeArg(name, body)

    # -- symbols ---------------------------------------------------------------------------

    def _number_of_same_symbols(self, modname: str | None, func: str) -> int:
        objs = self.kernel.kallsyms.objects
        if modname is not None:
            obj = objs.get(modname)
            return len(obj.find(func)) if obj else 0
        return sum(len(o.find(func)) for o in objs.values())

    def _validate_probe_symbol(self, symbol: str) -> int:
        """validate_probe_symbol(): 0 (a module not loaded yet is deferred)."""
        modname, colon, func = symbol.partition(":")
        if colon:
            if self.kernel.modules.find_module(modname) is None:
                return 0
            count = self._number_of_same_symbols(modname, func)
        else:
            count = self._number_of_same_symbols(None, symbol)
        if count > 1:
            return -EADDRNOTAVAIL
        return -ENOENT if count == 0 else 0

    def _lookup(self, symbol: str) -> Symbol | None:
        modname, colon, func = symbol.partition(":")
        if colon:
            obj = self.kernel.kallsyms.objects.get(modname)
            return obj.lookup(func) if obj else None
        return self.kernel.kallsyms.lookup_name(symbol)

    def _kprobe_on_func_entry(self, symbol: str, offset: int) -> int:
        """kprobe_on_func_entry(): 0, -EINVAL (not the entry) or -ENOENT."""
        sym = self._lookup(symbol)
        if sym is None:
            return -ENOENT
        entry = (0, 4) if self.kprobes.ibt else (0,)
        return 0 if offset in entry else -EINVAL

    def _module_exist(self, tk: TraceKprobe) -> bool:
        """trace_kprobe_module_exist(): true for a vmlinux symbol."""
        modname, colon, _ = tk.symbol.partition(":")
        return not colon or self.kernel.modules.find_module(modname) is not None

    # -- registration ---------------------------------------------------------------------

    def _register_trace_kprobe(self, group: str, name: str, symbol: str, offset: int,
                               is_return: bool, maxactive: int, args: list[ProbeArg]) -> int:  # fmt: skip
        """register_trace_kprobe() / append_trace_kprobe()."""
        tpe = self.events.get((group, name))
        if tpe is not None:
            if tpe.is_return != is_return:
                self._log_set_index(0)
                self._log_err(0, "DIFF_PROBE_TYPE")
                return -EEXIST
            old = tpe.probes[0].args
            diff = self._compare_arg_type(args, old)
            if diff:
                self._log_set_index(diff + 1)
                self._log_err(0, "DIFF_ARG_TYPE")
                return -EEXIST
            for other in tpe.probes:
                if (other.symbol, other.offset) == (symbol, offset) and all(
                    a.comm == b.comm for a, b in zip(other.args, args, strict=True)
                ):
                    self._log_set_index(0)
                    self._log_err(0, "SAME_PROBE")
                    return -EEXIST
            tk = TraceKprobe(self, tpe, symbol, offset, is_return, maxactive, args)
            tpe.probes.append(tk)
            ret = self._register_kprobe(tk)
            if ret:
                tpe.probes.remove(tk)
                return ret
            self.dyn_events.append(tk)
            return 0
        tpe = TraceProbeEvent(group, name, is_return, self._next_id)
        tk = TraceKprobe(self, tpe, symbol, offset, is_return, maxactive, args)
        tpe.probes.append(tk)
        ret = self._register_kprobe(tk)
        if ret < 0:
            return ret
        self._next_id += 1
        self.events[(group, name)] = tpe
        self._event_files(tpe)
        self.dyn_events.append(tk)
        return 0

    @staticmethod
    def _compare_arg_type(a: list[ProbeArg], b: list[ProbeArg]) -> int:
        """trace_probe_compare_arg_type(): 0, or the 1-based first difference."""
        if len(a) != len(b):
            return min(len(a), len(b)) + 1
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            kind = ("str" if x.comm.lower() == "$comm" else "int", "str" if y.comm.lower() == "$comm"
                    else "int")  # fmt: skip
            if kind[0] != kind[1] or x.name != y.name:
                return i + 1
        return 0

    def _refuse_notrace(self, symbol: str) -> int:
        """__register_trace_kprobe()'s within_notrace_func(): -EINVAL, logged."""
        sym = self._lookup(symbol)
        if sym is not None and sym.notrace:
            self.kernel.log.printk(
                KERN_WARNING, f"trace_kprobe: Could not probe notrace function {sym.name}"
            )
            return -EINVAL
        return 0

    def check_local_trace_kprobe(self, symbol: str) -> int:
        """create_local_trace_kprobe() up to register_kprobe(): the perf kprobe
        PMU's probe (a BPF kprobe link) must name exactly one function
        (-ENOENT, -EADDRNOTAVAIL: b022f0c7e404, "tracing/kprobes: Return
        EADDRNOTAVAIL when func matches several symbols", in 6.1.y too), and
        not a notrace one."""
        modname, colon, func = symbol.partition(":")
        count = self._number_of_same_symbols(modname, func) if colon else (
            self._number_of_same_symbols(None, symbol))  # fmt: skip
        if count != 1:
            return -ENOENT if count == 0 else -EADDRNOTAVAIL
        return self._refuse_notrace(symbol)

    def _register_kprobe(self, tk: TraceKprobe) -> int:
        """__register_trace_kprobe(): the kprobe is registered disabled unless
        the event is enabled; a module not loaded yet is deferred."""
        ret = self._refuse_notrace(tk.symbol)
        if ret:
            return ret
        if tk.event.enabled:
            tk.kp.flags &= ~_DISABLED
        else:
            tk.kp.flags |= _DISABLED
        ret = self.kprobes.register_kprobe(tk.kp)
        if ret == -ENOENT and not self._module_exist(tk):
            self.kernel.log.printk(
                KERN_WARNING,
                "trace_kprobe: This probe might be able to register after target module "
                "is loaded. Continue.",
            )
            return 0
        return ret

    def _unregister_kprobe(self, tk: TraceKprobe) -> None:
        """__unregister_trace_kprobe()."""
        if tk.registered:
            self.kprobes.unregister_kprobe(tk.kp)

    def _module_callback(self, mod: Module, state: int) -> int:
        """trace_kprobe_module_callback(): probes waiting for this module."""
        if state != MODULE_STATE_COMING:
            return 0
        for tk in self.dyn_events:
            if tk.symbol.partition(":")[0] == mod.name and ":" in tk.symbol:
                self._unregister_kprobe(tk)
                ret = self._register_kprobe(tk)
                if ret:
                    self.kernel.log.printk(
                        KERN_WARNING,
                        f"trace_kprobe: Failed to re-register probe {tk.event.name} on "
                        f"{mod.name}: {ret}",
                    )
        return 0

    # -- removal --------------------------------------------------------------------------

    def _free(self, tk: TraceKprobe) -> int:
        """trace_kprobe_release() -> unregister_trace_kprobe()."""
        tpe = tk.event
        if len(tpe.probes) == 1 and tpe.enabled:
            return -EBUSY  # an enabled event cannot be removed (its siblings can)
        self._unregister_kprobe(tk)
        tpe.probes.remove(tk)
        self.dyn_events.remove(tk)
        if not tpe.probes:
            del self.events[(tpe.group, tpe.name)]
            fs = self.kernel.fs
            fs.remove(f"{TRACING}/events/{tpe.group}/{tpe.name}")
            if not any(g == tpe.group for g, _ in self.events):
                fs.remove(f"{TRACING}/events/{tpe.group}")
        return 0

    def dyn_event_release(self, raw: str) -> int:
        """dyn_event_release(): ``-:[GRP/]EVENT [SYM[+OFFS] [ARGS]]``."""
        argv = raw.split()
        if not argv[0].startswith("-:"):
            return -EINVAL
        event = argv[0][2:]
        system: str | None = None
        if "/" in event:
            system, event = event.split("/", 1)
        if system is None and not event:
            return -EINVAL
        ret = -ENOENT
        for tk in list(self.dyn_events):
            if not self._match(tk, system, event, argv[1:]):
                continue
            ret = self._free(tk)
            if ret:
                break
        return ret

    @staticmethod
    def _match(tk: TraceKprobe, system: str | None, event: str, args: list[str]) -> bool:
        """trace_kprobe_match()."""
        if event and tk.event.name != event:
            return False
        if system is not None and tk.event.group != system:
            return False
        if not args:
            return True
        if args[0] != tk.place():
            return False
        rest = args[1:]
        if len(tk.args) < len(rest):
            return False
        return all(f"{a.name}={a.comm}" == r for a, r in zip(tk.args, rest, strict=False))

    def dyn_events_release_all(self) -> int:
        """dyn_events_release_all(): -EBUSY (nothing removed) if one is enabled."""
        if any(tk.event.enabled for tk in self.dyn_events):
            return -EBUSY
        for tk in list(self.dyn_events):
            ret = self._free(tk)
            if ret:
                return ret
        return 0

    # -- events/GRP/EVENT/enable -------------------------------------------------------------

    def _event_files(self, tpe: TraceProbeEvent) -> None:
        fs = self.kernel.fs
        base = f"{TRACING}/events/{tpe.group}"
        if fs.lookup(f"{base}/enable") is None:
            fs.create_file(
                f"{base}/enable",
                0o644,
                lambda: self._group_enabled(tpe.group),
                lambda text: self._group_enable(tpe.group, text),
            )
            fs.create_file(f"{base}/filter", 0o644, lambda: "none\n", len)
        d = f"{base}/{tpe.name}"
        fs.create_file(
            f"{d}/enable",
            0o644,
            lambda: f"{int(tpe.enabled)}\n",
            lambda text: self._event_enable(tpe, text),
        )
        fs.create_file(f"{d}/filter", 0o644, lambda: "none\n", len)
        fs.create_file(f"{d}/id", 0o444, lambda: f"{tpe.id}\n")

    def _group_enabled(self, group: str) -> str:
        """system_enable_read(): 0, 1, or X for a mix."""
        states = {tpe.enabled for (g, _), tpe in self.events.items() if g == group}
        return "X\n" if len(states) > 1 else f"{int(states.pop()) if states else 0}\n"

    def _group_enable(self, group: str, text: str) -> int:
        """system_enable_write() -> __ftrace_set_clr_event(): every event; the
        last error is returned."""
        value = _kstrtoul(text, 10)  # kstrtoul_from_user(ubuf, cnt, 10, &val)
        if value not in (0, 1):
            return -EINVAL
        ret = 0
        for (g, _), tpe in list(self.events.items()):
            if g == group:
                err = self._set_enabled(tpe, bool(value))
                ret = ret or err  # the first error is returned
        return ret or len(text)

    def _event_enable(self, tpe: TraceProbeEvent, text: str) -> int:
        """event_enable_write(): 0 or 1."""
        value = _kstrtoul(text, 10)  # kstrtoul_from_user(ubuf, cnt, 10, &val)
        if value not in (0, 1):
            return -EINVAL
        ret = self._set_enabled(tpe, bool(value))
        return ret or len(text)

    def _set_enabled(self, tpe: TraceProbeEvent, enable: bool) -> int:
        """__ftrace_event_enable_disable(): enable_trace_kprobe() (rolls back
        on an error, which is logged) / disable_trace_kprobe()."""
        ret = self._enable_trace_kprobe(tpe, enable)
        if ret:
            self.kernel.log.printk(KERN_INFO, f"event trace: Could not enable event {tpe.name}")
        return ret

    def _enable_trace_kprobe(self, tpe: TraceProbeEvent, enable: bool) -> int:
        if enable == tpe.enabled:
            return 0
        if not enable:
            tpe.enabled = False
            for tk in tpe.probes:
                if tk.registered:
                    self.kprobes.disable_kprobe(tk.kp)
            return 0
        tpe.enabled = True
        done: list[TraceKprobe] = []
        for tk in tpe.probes:
            if tk.kp.gone:
                continue
            ret = self.kprobes.enable_kprobe(tk.kp) if tk.registered else 0
            if ret:
                for other in done:
                    self.kprobes.disable_kprobe(other.kp)
                tpe.enabled = False
                return ret
            done.append(tk)
        return 0

    # -- hits ---------------------------------------------------------------------------------

    def ps(self, sym: Symbol, off: int) -> str:
        """%pS: ``func+0xOFF/0xSIZE [mod]``."""
        mod = "" if sym.owner.name == "vmlinux" else f" [{sym.owner.name}]"
        return f"{sym.name}+{off:#x}/{sym.size:#x}{mod}"

    def caller(self, task: Task) -> Symbol:
        """The return address a return probe reports: the caller's frame."""
        if task.stack:
            return task.stack[-1]
        fallback = self.kernel.vmlinux.builtin("do_syscall_64")
        assert fallback is not None
        return fallback

    def record(self, task: Task, tk: TraceKprobe, where: str, ctx: str, retval: int = 0) -> None:
        args = "".join(f" {a.name}={a.fetch(task, retval, self.btf_retval)}" for a in tk.args)
        self.tracing.record(task, "event", f"{tk.event.name}: {where}{args}", ctx)

    def _on_return(self, task: Task, sym: Symbol, target: Symbol | None, result: int) -> None:
        """The rethook trampoline: a redirected call's hooks armed on the
        original run when it returns (after the new function's own)."""
        order = (target, sym) if target is not None and target is not sym else (sym,)
        for func in order:
            hooks = self.pending.pop((task.pid, func), [])
            for tk in reversed(hooks):
                tk.returned(task, func, result)

    # -- reading -----------------------------------------------------------------------------

    def _show_events(self) -> str:
        return "".join(tk.show() for tk in self.dyn_events)

    def _show_profile(self) -> str:
        """probes_profile_seq_show()."""
        return "".join(
            f"  {tk.event.name:<44} {tk.nhit:15d} {tk.kp.nmissed:15d}\n" for tk in self.dyn_events
        )


_DISABLED = 2  # KPROBE_FLAG_DISABLED
