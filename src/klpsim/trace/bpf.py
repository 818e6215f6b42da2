"""BPF tracing attachments: kprobe (with bpf_override_return), kretprobe,
kprobe_multi, fentry, fexit and fmod_ret, on the ftrace of one kernel.

Mirrors the attach paths of kernel/trace/bpf_trace.c, kernel/bpf/verifier.c
and kernel/bpf/trampoline.c, for what decides who may attach and who wins
a call:

* a ``kprobe`` program is a trace_kprobe: a kprobe without post_handler, so
  it rides ``kprobe_ftrace_ops`` (SAVE_REGS, no IPMODIFY; trace/kprobes.py)
  and nothing in ftrace refuses it next to a livepatch.
  bpf_override_return() writes regs->ip (just_return_func) from inside that
  ops' handler. Every handler of the call site runs, oldest ftrace_ops last,
  so the last writer of regs->ip wins: the override beats a livepatch whose
  ops is newer than kprobe_ftrace_ops and loses to an older one. Reloading
  either side moves its ops to the head and flips the winner
  (lpc26-truth.md, rows C, T4, T5, T10, T11);
* perf_event_attach_bpf_prog(): a program that calls bpf_override_return()
  attaches only at function entry of a function on the error-injection
  list, else -EINVAL ("Kprobe override only works if they are on the
  function entry, and only if they are on the opt-in list"; the helper came
  in 4.16 with "bpf: add a bpf_override_function helper", the opt-in list
  with "error-injection: Separate error-injection from kprobe"). The helper
  exists only with CONFIG_BPF_KPROBE_OVERRIDE: without it the verifier
  refuses the program ("program of this type cannot use helper
  bpf_override_return#58", -EINVAL);
* RFC 2/4 of 2026-04-02 ("trace: Allow kprobes to override livepatched
  functions", never merged): with CONFIG_KPROBE_OVERRIDE_KLP_FUNC=y
  perf_event_attach_bpf_prog() also admits any address inside a module with
  ``mod->klp``, helpers included, not only the replacement functions
  (Miroslav Benes' objection). kprobe_multi was not touched by the RFC;
* ``kprobe_multi`` (fprobe): every address must be on the list when the
  program overrides (addrs_check_error_injection_list(), 6.6, "bpf: Add
  override check to kprobe multi link attach"; -EINVAL). Entry-only
  links share ``fprobe_ftrace_ops``, return links ``fprobe_graph_ops``
  (Menglong Dong's "tracing: fprobe: use ftrace if
  CONFIG_DYNAMIC_FTRACE_WITH_ARGS"). An override from a kprobe_multi program
  is another undeclared regs->ip writer; that it behaves like a kprobe's is
  inferred, not measured (lpc26-truth.md, 2.3);
* ``fentry``/``fexit``/``fmod_ret`` programs share one BPF trampoline per
  function, registered as a DIRECT ftrace_ops whose trampoline runs after
  every list handler (trace/ftrace.py). fmod_ret attaches only to
  error-injectable or ``security_*`` functions (check_attach_modify_return(),
  "%s() is not modifiable", -EINVAL). fexit and fmod_ret make the
  trampoline call the function (BPF_TRAMP_F_CALL_ORIG); next to an IPMODIFY
  ops (a livepatch) it shares the site through ops_func (00963a2e75a8 "bpf:
  Support bpf_trampoline on functions with IPMODIFY (e.g. livepatch)") and
  is regenerated with BPF_TRAMP_F_ORIG_STACK, so it calls whatever the list
  handlers left in regs->ip (the livepatch's new_func; or just_return_func
  after an override, which then returns whatever rax held, not the
  override's value: measured, error_inject.RaxLeftover). A nonzero fmod_ret
  skips that call: fmod_ret wins over a livepatch in both orders. Without
  ORIG_STACK a CALL_ORIG trampoline calls the original body (orig + 5);
* a ``kprobe`` link is a perf kprobe event (create_local_trace_kprobe()):
  the symbol must name one function (-ENOENT, -EADDRNOTAVAIL), not a
  notrace one ("trace_kprobe: Could not probe notrace function", -EINVAL),
  at an instruction boundary (-EILSEQ); the kprobe is registered when the
  event is opened, and the override check runs only when the program is
  attached to it, so a misplaced probe fails with the kprobe's errno first;
* a loader finds a tracing program's target by its BTF id (libbpf:
  -ESRCH when there is none, as for the SYSCALL_DEFINE0 aliases); a target
  ftrace cannot patch gets -EBUSY from bpf_arch_text_poke(), which finds no
  nop5 where the call would go;
* fentry/fexit/fmod_ret programs hold a reference on the target's module
  (Viktor Malik, "bpf: Fix attaching fentry/fexit/fmod_ret/lsm to modules",
  6.4; before that register_fentry() held it), and kprobe_multi links on
  the modules they probe (Jiri Olsa, "bpf: Take module reference on
  kprobe_multi link", 6.4): rmmod is refused while they are attached. A
  kprobe holds none: on rmmod the probe goes with the module's text.

Observers report the call under the function they are attached to:
bpf_get_func_ip() of a kprobe, fentry or fexit program on the original
function is the original, even when a livepatch ran new_func.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from klpsim.kernel.errno import EAGAIN, EBUSY, EINVAL, ENOENT, EOPNOTSUPP, ESRCH
from klpsim.kernel.symbols import Symbol
from klpsim.kernel.tracepoint import Tracepoint
from klpsim.kernel.vmlinux import SYSCALL_ALIASES
from klpsim.trace.events import (
    EXIT_KINDS,
    KPROBE_KINDS,
    MULTI_KINDS,
    OVERRIDE_KINDS,
    TRAMP_KINDS,
    AttachRefused,
    CallPhase,
    LinkAttached,
    LinkDetached,
    LinkKind,
    ProgramRan,
    TraceEvent,
    TrampolineFlag,
)
from klpsim.trace.ftrace import (
    FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER,
    FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER,
    FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF,
    FTRACE_OPS_FL_DIRECT,
    FTRACE_OPS_FL_SAVE_REGS,
    FtraceOps,
)

if TYPE_CHECKING:
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Regs
    from klpsim.kernel.tasks import Task
    from klpsim.trace.error_inject import ErrorInjection
    from klpsim.trace.ftrace import Ftrace
    from klpsim.trace.kprobes import Kprobe, Kprobes
    from klpsim.trace.trace_kprobe import TraceKprobes

__all__ = ["Bpf", "BpfLink", "BpfTrampoline", "AttachError", "LinkKind", "TrampolineFlag"]

CALL_ORIG = TrampolineFlag.CALL_ORIG
SHARE_IPMODIFY = TrampolineFlag.SHARE_IPMODIFY
ORIG_STACK = TrampolineFlag.ORIG_STACK
NO_FLAGS = TrampolineFlag(0)
SECURITY_PREFIX = "security_"
BPF_FUNC_override_return = 58

CMD_NAMES = {
    FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF: "ENABLE_SHARE_IPMODIFY_SELF",
    FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER: "ENABLE_SHARE_IPMODIFY_PEER",
    FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER: "DISABLE_SHARE_IPMODIFY_PEER",
}


class AttachError(Exception):
    """An attach the kernel refuses: ``errno`` (negative) and the log lines
    the verifier or the attach path gives (may be empty)."""

    def __init__(self, errno: int, log: tuple[str, ...] = (), why: str = ""):
        super().__init__(errno, log)
        self.errno = errno
        self.log = log
        self.why = why
        """Why, in words, where the kernel says nothing (AttachRefused.why)."""


class BpfLink:
    """One attached program (a ``struct bpf_link``) and what it saw."""

    def __init__(self, name: str, kind: LinkKind, targets: list[Symbol], offset: int = 0,
                 override: int | None = None, ret: int = 0):  # fmt: skip
        self.name = name
        self.kind = kind
        self.targets = targets
        self.offset = offset
        self.override = override
        """bpf_override_return(ctx, override) from a kprobe/kprobe_multi program."""
        self.ret = ret
        """What an fmod_ret program returns (0: let the call through)."""
        self.hits = 0
        self.seen: list[ProgramRan] = []
        """What the program reported, per hit."""
        self.kprobes: list[Kprobe] = []
        self.modules: list[Module] = []  # module references held
        self.attached = True
        self.int3 = False  # a kprobe inside a body (offset), not on ftrace

    @property
    def target(self) -> Symbol:
        return self.targets[0]

    def where(self) -> str:
        """The target as the verbs print it: ``func``, ``mod:func``, ``func+0x10``."""
        names = []
        for sym in self.targets:
            prefix = "" if sym.owner.name == "vmlinux" else f"{sym.owner.name}:"
            names.append(prefix + sym.name + (f"+{self.offset:#x}" if self.offset else ""))
        return ",".join(names)

    def __repr__(self) -> str:
        return f"<bpf_link {self.name} {self.kind} {self.where()}>"


class BpfTrampoline:
    """A ``struct bpf_trampoline``: the fentry/fexit/fmod_ret links of one
    function behind one direct ftrace_ops."""

    def __init__(self, bpf: Bpf, sym: Symbol):
        self.bpf = bpf
        self.sym = sym
        self.links: dict[LinkKind, list[BpfLink]] = {k: [] for k in LinkKind if k in TRAMP_KINDS}
        self.flags = NO_FLAGS
        self.commands: list[str] = []  # ops_func commands received, in order
        self.fops = FtraceOps(
            f"bpf_trampoline:{sym.name}",
            lambda *a: None,  # call_direct_funcs(): only selects the trampoline
            FTRACE_OPS_FL_DIRECT | FTRACE_OPS_FL_SAVE_REGS,
        )
        self.fops.filter = [sym]
        self.fops.private = self
        self.fops.ops_func = self.ops_func
        self.fops.direct_call = self.run

    @property
    def nr_links(self) -> int:
        return sum(len(v) for v in self.links.values())

    def update(self) -> int:
        """bpf_trampoline_update(): regenerate, then register or modify."""
        ftrace = self.bpf.ftrace
        if not self.nr_links:
            if self.fops.enabled:
                ftrace.unregister_ftrace_function(self.fops)
            self.flags &= SHARE_IPMODIFY
            return 0
        self.flags &= SHARE_IPMODIFY
        if self.links[LinkKind.FEXIT] or self.links[LinkKind.FMOD_RET]:
            self.flags |= CALL_ORIG
        while True:
            if SHARE_IPMODIFY | CALL_ORIG in self.flags:
                self.flags |= ORIG_STACK
            if self.fops.enabled:
                # modify_ftrace_direct(): since "ftrace: bpf: Fix IPMODIFY +
                # DIRECT in modify_ftrace_direct()" (Oct 2025) a trampoline
                # that starts calling the function next to an IPMODIFY ops
                # negotiates as on registration.
                if (
                    CALL_ORIG in self.flags
                    and ORIG_STACK not in self.flags
                    and ftrace._ipmodify_owner(self.sym)
                ):
                    self.ops_func(self.fops, self.sym, FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF)
                    continue
                return 0
            ret = ftrace.register_ftrace_function(self.fops)
            if ret == -EAGAIN:  # from ops_func: SHARE_IPMODIFY is set, retry
                continue
            return ret

    def ops_func(self, ops: FtraceOps, sym: Symbol, cmd: int) -> int:
        """bpf_tramp_ftrace_ops_func()."""
        self.commands.append(CMD_NAMES[cmd])
        if cmd == FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF:
            if CALL_ORIG in self.flags and ORIG_STACK not in self.flags:
                self.flags |= SHARE_IPMODIFY
                return -EAGAIN  # regenerate with ORIG_STACK and retry
            return 0
        if cmd == FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER:
            self.flags |= SHARE_IPMODIFY
            if CALL_ORIG in self.flags:
                self.flags |= ORIG_STACK  # bpf_trampoline_update()
            return 0
        self.flags &= ~(SHARE_IPMODIFY | ORIG_STACK)
        return 0

    def run(self, task: Task, sym: Symbol, ops: FtraceOps, regs: Regs) -> None:
        """The trampoline: fentry programs, fmod_ret programs, then the call
        (left to the caller: regs->ip with ORIG_STACK, else the original
        body); fexit programs run when the call returns (Bpf._on_return)."""
        bpf = self.bpf
        for link in self.links[LinkKind.FENTRY]:
            bpf.fire(link, sym)
        if CALL_ORIG not in self.flags:
            return  # returns to regs->ip, whatever the list handlers left there
        bpf.pending[(task.pid, sym)] += 1
        for link in self.links[LinkKind.FMOD_RET]:
            bpf.fire(link, sym, returned=link.ret)
            if link.ret != 0:
                regs.overridden = True  # the call is skipped
                regs.ret = link.ret
                return
        if ORIG_STACK not in self.flags:
            regs.ip = sym  # call orig_func + MCOUNT_INSN_SIZE: its own body
        elif regs.ip is bpf.ei.just_return_func:
            bpf.ei.call_just_return(task)  # called, not returned to: rax is lost


class FprobeOps:
    """One of the shared fprobe ftrace_ops (fprobe_ftrace_ops for entry-only
    fprobes, fprobe_graph_ops for fprobes with an exit handler): registered
    on its first user, filtered per address, unregistered after its last."""

    def __init__(self, bpf: Bpf, name: str, exit_mode: bool):
        self.bpf = bpf
        self.exit_mode = exit_mode
        self.ops = FtraceOps(name, self._handler)
        self.users: Counter[Symbol] = Counter()

    def add(self, syms: list[Symbol]) -> int:
        ftrace = self.bpf.ftrace
        first = not self.users
        for sym in syms:
            if not self.users[sym]:
                ftrace.ftrace_set_filter_ip(self.ops, sym)
            self.users[sym] += 1
        if first:
            ret = ftrace.register_ftrace_function(self.ops)
            if ret:
                self.remove(syms)
                return ret
        return 0

    def remove(self, syms: list[Symbol]) -> None:
        ftrace = self.bpf.ftrace
        for sym in syms:
            self.users[sym] -= 1
            if self.users[sym] <= 0:
                del self.users[sym]
        if not self.users and self.ops.enabled:
            ftrace.unregister_ftrace_function(self.ops)
        for sym in syms:
            if sym not in self.users and sym in self.ops.filter:
                ftrace.ftrace_set_filter_ip(self.ops, sym, remove=True)

    def _handler(self, task: Task, ip: Symbol, ops: FtraceOps, regs: Regs) -> None:
        bpf = self.bpf
        kind = LinkKind.KRETPROBE_MULTI if self.exit_mode else LinkKind.KPROBE_MULTI
        for link in list(bpf.links.values()):
            if link.kind != kind or ip not in link.targets:
                continue
            if self.exit_mode:
                bpf.pending[(task.pid, ip)] += 1
                continue
            bpf.fire(link, ip)
            if link.override is not None:
                bpf.ei.override_function_with_return(task, regs, link.override)


class Bpf:
    """The BPF tracing links of one kernel."""

    def __init__(
        self,
        kernel: Kernel,
        ftrace: Ftrace,
        kprobes: Kprobes | None,
        error_injection: ErrorInjection,
        trace_kprobes: TraceKprobes | None = None,
        unknown_helper: str = "program of this type cannot use helper {name}#{id}",
    ):
        self.kernel = kernel
        self.ftrace = ftrace
        self.kprobes = kprobes
        self.ei = error_injection
        self.trace_kprobes = trace_kprobes  # the perf kprobe PMU's checks
        self.unknown_helper = unknown_helper  # Profile.verifier_unknown_helper
        self.links: dict[str, BpfLink] = {}
        self.trampolines: dict[Symbol, BpfTrampoline] = {}
        self.fprobe = FprobeOps(self, "fprobe_ftrace_ops", exit_mode=False)
        self.fprobe_graph = FprobeOps(self, "fprobe_graph_ops", exit_mode=True)
        # (pid, func) -> return hooks armed at entry
        self.pending: Counter[tuple[int, Symbol]] = Counter()
        self.tp: Tracepoint[TraceEvent] = Tracepoint()  # trace/events.py
        self._seq = 0
        kernel.call_observers.append(self._on_return)

    def has(self, option: str) -> bool:
        return self.kernel.has_config(option)

    # -- attach ------------------------------------------------------------------

    def lookup(self, objname: str | None, name: str) -> Symbol | None:
        """The function a program names: ``mod:func`` in that module (module
        BTF), a bare name in vmlinux first, then in load order."""
        if objname:
            obj = self.kernel.kallsyms.objects.get(objname)
            return obj.lookup(name) if obj else None
        return self.kernel.kallsyms.lookup_name(name)

    def next_name(self) -> str:
        self._seq += 1
        while f"bpf{self._seq}" in self.links:
            self._seq += 1
        return f"bpf{self._seq}"

    def attach(self, kind: LinkKind, funcs: list[tuple[str | None, str]], offset: int = 0,
               override: int | None = None, ret: int = 0, name: str | None = None) -> BpfLink:  # fmt: skip
        """Load and attach one program; raises AttachError with the errno."""
        try:
            link = self._attach(kind, funcs, offset, override, ret, name)
        except AttachError as e:
            names = tuple(f"{o}:{f}" if o else f for o, f in funcs)
            self.tp(AttachRefused(kind, names, e.errno, e.log, e.why))
            raise
        self.tp(LinkAttached(link.name, link.kind, link.where()))
        return link

    def _attach(self, kind: LinkKind, funcs: list[tuple[str | None, str]], offset: int,
                override: int | None, ret: int, name: str | None) -> BpfLink:  # fmt: skip
        if override is not None:
            self._check_override_helper()
        syms: list[Symbol] = []
        for objname, fname in funcs:
            sym = self.lookup(objname, fname)
            if sym is None:
                # libbpf cannot find the BTF id / the kprobe has no symbol
                raise AttachError(
                    -ESRCH if kind in TRAMP_KINDS else -ENOENT,
                    why=f"no function {fname} in kallsyms",
                )
            syms.append(sym)
        link = BpfLink(name or "", kind, syms, offset, override, ret)
        if kind in KPROBE_KINDS:
            self._attach_kprobe(link)
        elif kind in MULTI_KINDS:
            self._attach_multi(link)
        else:
            self._attach_tracing(link)
        link.name = link.name or self.next_name()  # a link id only on success
        self.links[link.name] = link
        return link

    def _check_override_helper(self) -> None:
        if not self.has("BPF_KPROBE_OVERRIDE"):
            # kprobe_prog_func_proto() has no BPF_FUNC_override_return
            line = self.unknown_helper.format(
                name="bpf_override_return", id=BPF_FUNC_override_return
            )
            raise AttachError(-EINVAL, (line,))

    def override_allowed(self, sym: Symbol) -> bool:
        """perf_event_attach_bpf_prog(): on the opt-in list, or (RFC 2/4) in a
        livepatch module: trace_kprobe_klp_func_overridable() checks only
        ``mod->klp``, so a livepatch's helpers qualify as well as its new_funcs."""
        if self.ei.within_error_injection_list(sym):
            return True
        if self.has("KPROBE_OVERRIDE_KLP_FUNC") and self.has("LIVEPATCH"):
            mod = self.kernel.modules.find_module(sym.owner.name)
            return bool(mod is not None and mod.klp)
        return False

    def _attach_kprobe(self, link: BpfLink) -> None:
        """perf_event_open() of a perf kprobe (create_local_trace_kprobe(),
        which registers the kprobe), then the program's attach to it
        (perf_event_attach_bpf_prog())."""
        sym = link.target
        if self.kprobes is None:
            # no kprobe PMU without CONFIG_KPROBES
            raise AttachError(-ENOENT, why="the kernel has no ftrace-based kprobes")
        module = None if sym.owner.name == "vmlinux" else sym.owner.name
        if self.trace_kprobes is not None:
            symbol = f"{module}:{sym.name}" if module else sym.name
            ret = self.trace_kprobes.check_local_trace_kprobe(symbol)
            if ret:
                why = {-EINVAL: "a notrace function", -ENOENT: "no such function"}
                raise AttachError(ret, why=f"{symbol}: {why.get(ret, 'several functions')}")
        is_return = link.kind is LinkKind.KRETPROBE
        kp = self.kprobes.new_kprobe(
            sym.name,
            pre_handler=lambda kp, regs, task: self._kprobe_pre(link, kp, regs, task),
            owner="bpf",
            module=module,
            offset=link.offset,
            is_return=is_return,  # pre_handler_kretprobe
        )
        if is_return and self.kprobes.kprobe_on_func_entry(kp) == -EINVAL:
            # register_kretprobe(): return probes only at the entry
            raise AttachError(-EINVAL, why="a kretprobe attaches at the entry only")
        res = self.kprobes.check_kprobe_address(kp)
        if isinstance(res, int):
            raise AttachError(res, why=f"no kprobe at {link.where()}")
        _, _, on_func_entry, on_ftrace = res
        if on_ftrace:
            ret = self.kprobes.register_kprobe(kp)
            if ret:
                raise AttachError(ret, why=self._ftrace_refused(sym, ret))
            link.kprobes.append(kp)
        else:
            link.int3 = True  # a breakpoint in the body: fires when the body runs
        if link.override is not None and (not on_func_entry or not self.override_allowed(sym)):
            # "Kprobe override only works if they are on the function entry,
            # and only if they are on the opt-in list." The event is closed.
            for kp in link.kprobes:
                self.kprobes.unregister_kprobe(kp)
            link.kprobes.clear()
            raise AttachError(-EINVAL, why=self._override_refused(sym, 0 if on_func_entry else 1))

    def _override_refused(self, sym: Symbol, offset: int) -> str:
        if offset:
            return "bpf_override_return() works at a function's entry only"
        mod = self.kernel.modules.find_module(sym.owner.name)
        if mod is not None and mod.klp:
            return (
                f"{sym.name} is a livepatch's function, not on the error-injection list "
                "(overriding it needs RFC 2/4's CONFIG_KPROBE_OVERRIDE_KLP_FUNC, not merged)"
            )
        return f"{sym.name} is not on the error-injection list (ALLOW_ERROR_INJECTION)"

    def _ftrace_refused(self, sym: Symbol, ret: int) -> str:
        if ret != -EBUSY:
            return ""
        owner = self.ftrace._ipmodify_owner(sym)
        if owner is not None:
            return f"ftrace: {owner.name} already holds {sym.name} with IPMODIFY"
        return f"ftrace refused to hook {sym.name}"

    def _kprobe_pre(self, link: BpfLink, kp: Kprobe, regs: Regs, task: Task) -> int:
        """kprobe_dispatcher() -> kprobe_perf_func() -> trace_call_bpf()."""
        if not link.attached:
            return 0
        orig_ip = regs.ip
        addr = kp.addr
        assert addr is not None  # a probe fires only once registered
        if link.kind is LinkKind.KRETPROBE:
            self.pending[(task.pid, addr)] += 1  # pre_handler_kretprobe()
            return 0
        self.fire(link, addr)
        if link.override is not None:
            self.ei.override_function_with_return(task, regs, link.override)
        # "We need to check and see if we modified the pc of the pt_regs, and
        # if so return 1 so that we don't do the single stepping."
        return 1 if regs.ip is not orig_ip else 0

    def _attach_multi(self, link: BpfLink) -> None:
        if not self.has("FPROBE"):
            # bpf_kprobe_multi_link_attach() without CONFIG_FPROBE
            raise AttachError(-EOPNOTSUPP, why="the kernel has no fprobe (CONFIG_FPROBE)")
        if link.override is not None and not all(
            self.ei.within_error_injection_list(s) for s in link.targets
        ):
            # addrs_check_error_injection_list()
            bad = next(s for s in link.targets if not self.ei.within_error_injection_list(s))
            raise AttachError(-EINVAL, why=self._override_refused(bad, 0))
        for sym in link.targets:
            if not sym.ftrace_loc:
                raise AttachError(-EINVAL, why=f"{sym.name} has no ftrace call site")
        self._module_get(link, *link.targets)
        fp = self.fprobe_graph if link.kind is LinkKind.KRETPROBE_MULTI else self.fprobe
        ret = fp.add(link.targets)
        if ret:
            self._module_put(link)
            raise AttachError(ret, why=self._ftrace_refused(link.targets[0], ret))

    def _attach_tracing(self, link: BpfLink) -> None:
        sym = link.target
        if sym.name in SYSCALL_ALIASES and sym.owner.name == "vmlinux":
            # the loader's BTF lookup, before any load: the alias has no BTF FUNC
            raise AttachError(-ESRCH, why=f"{sym.name} has no BTF id (an alias of __do_sys_*)")
        if link.kind is LinkKind.FMOD_RET and not self.modify_return_allowed(sym):
            raise AttachError(-EINVAL, (f"{sym.name}() is not modifiable",))
        if not sym.ftrace_loc:
            # register_fentry() -> bpf_arch_text_poke(): no nop5 at the entry
            raise AttachError(-EBUSY, why=f"{sym.name} has no ftrace call site")
        tr = self.trampolines.get(sym)
        if tr is None:
            tr = self.trampolines[sym] = BpfTrampoline(self, sym)
        self._module_get(link, sym)
        tr.links[link.kind].append(link)
        ret = tr.update()
        if ret:
            tr.links[link.kind].remove(link)
            tr.update()
            self._module_put(link)
            raise AttachError(ret, why=self._ftrace_refused(sym, ret))

    def modify_return_allowed(self, sym: Symbol) -> bool:
        """check_attach_modify_return(): error-injectable, or an LSM hook."""
        return self.ei.within_error_injection_list(sym) or sym.name.startswith(SECURITY_PREFIX)

    def _module_get(self, link: BpfLink, *syms: Symbol) -> None:
        for sym in syms:
            mod = self.kernel.modules.find_module(sym.owner.name)
            if mod is not None and mod not in link.modules and mod.try_module_get():
                link.modules.append(mod)

    def _module_put(self, link: BpfLink) -> None:
        for mod in link.modules:
            mod.module_put()
        link.modules.clear()

    # -- detach ---------------------------------------------------------------------

    def detach(self, link: BpfLink) -> None:
        """Close the link: the program stops firing, references are dropped."""
        if not link.attached:
            return
        link.attached = False
        self.links.pop(link.name, None)
        if link.kind in KPROBE_KINDS:
            for kp in link.kprobes:
                if self.kprobes is not None:
                    self.kprobes.unregister_kprobe(kp)
        elif link.kind in MULTI_KINDS:
            fp = self.fprobe_graph if link.kind is LinkKind.KRETPROBE_MULTI else self.fprobe
            fp.remove(link.targets)
        else:
            tr = self.trampolines[link.target]
            tr.links[link.kind].remove(link)
            tr.update()
            if not tr.nr_links:
                del self.trampolines[link.target]
        self._module_put(link)
        self.tp(LinkDetached(link.name))

    # -- running ----------------------------------------------------------------------

    def fire(
        self,
        link: BpfLink,
        sym: Symbol,
        phase: CallPhase = CallPhase.ENTRY,
        returned: int | None = None,
        saw_return: object = None,
    ) -> None:
        """A program ran; it attributes the call to *sym* (bpf_get_func_ip())."""
        link.hits += 1
        override = link.override if link.kind in OVERRIDE_KINDS else None
        event = ProgramRan(link.name, link.kind, sym.name, phase, override, returned, saw_return)
        link.seen.append(event)
        self.tp(event)

    def _on_return(self, task: Task, sym: Symbol, target: Symbol | None, result: int) -> None:
        """The call of *sym* returned: breakpoints in the body that ran, then
        the return hooks armed at entry (rethook, fgraph, trampoline)."""
        if target is not None:
            for link in list(self.links.values()):
                if link.int3 and link.target is target:
                    self.fire(link, target, CallPhase.BODY)
        # A redirected call returns from the new function first (its own
        # hooks, armed when the redirect entered it), then from the original.
        for func in (target, sym) if target is not None and target is not sym else (sym,):
            key = (task.pid, func)
            if not self.pending.get(key):
                continue
            self.pending[key] -= 1
            if not self.pending[key]:
                del self.pending[key]
            # The trampoline's fexit programs run when its call returns, before
            # the return reaches a hijacked return address (rethook, fgraph).
            exits = [lk for lk in self.links.values() if func in lk.targets and not lk.int3]
            for link in [lk for lk in exits if lk.kind is LinkKind.FEXIT] + [
                lk for lk in exits if lk.kind in EXIT_KINDS and lk.kind is not LinkKind.FEXIT
            ]:
                self.fire(link, func, CallPhase.EXIT, saw_return=result)

    # -- inspection ----------------------------------------------------------------------

    def is_armed(self, link: BpfLink) -> bool:
        """Would an entry to the target reach the program's hook at all?"""
        if not link.attached:
            return False
        if link.int3:
            return True
        if link.kind in KPROBE_KINDS:
            return any(kp.armed for kp in link.kprobes)
        ops = (
            self.trampolines[link.target].fops
            if link.kind in TRAMP_KINDS
            else (self.fprobe_graph if link.kind is LinkKind.KRETPROBE_MULTI else self.fprobe).ops
        )
        return ops.enabled and all(s.fentry is not None for s in link.targets)
