"""Livepatch x ftrace consumer: who wins, run on the model and set beside
what chuyee/lpc26-livepatch measured on a real kernel (lpc26-truth.md, 2.2).

Each of the suite's 14 consumers (A-N) shares ``cmdline_proc_show`` with a
livepatch, in both attach orders: consumer first ("klp as Contender") and
livepatch first ("klp as Incumbent"). A scenario attaches the incumbent,
then the contender, calls the function once, reads who ran and what the
caller got, what each consumer attributed the call to, and the site's
``enabled_functions`` state; return hooks (F, H, I) are read once more
while the livepatch's new_func returns 7. The labels are the suite's
(run_coexistence_experiment.sh): Self, -EBUSY, Override, Suppressed, OK,
Stale Symbols, with a dagger when an entry handler saw regs->ip == new_func.

The kernel is the suite's: 7.1 with lpc26-livepatch's patch 0001 (arming
errors of __register_kprobe() propagated again, undoing 587e8e6d640b's
regression) and patch 0002 (ALLOW_ERROR_INJECTION(cmdline_proc_show,
ERRNO), NOT-FOR-UPSTREAM). The ``as released`` column reruns the two cells
that patch 0001 changes on 7.1 as released.

``klpsim truth-table`` prints docs/truth-table.md.
"""

from dataclasses import dataclass

from klpsim.kernel.errno import EINVAL, EIO, EPERM, errno_name
from klpsim.kernel.module import FunctionSpec, ModuleSpec
from klpsim.kernel.params import ParamSpec
from klpsim.livepatch.structs import KlpFunc, KlpObject
from klpsim.modules.base import LivepatchCode
from klpsim.modules.definition import TargetModule
from klpsim.session import Session
from klpsim.trace.bpf import AttachError
from klpsim.trace.events import CallPhase, LinkKind
from klpsim.trace.ftrace import FtraceOps

__all__ = ["Cell", "MEASURED", "PEERS", "run_cell", "run_table", "render"]

FUNC = "cmdline_proc_show"
MAGIC_RET = 7
# Values the suite injects (lib_coexist.sh attach_user, bpf_coexist_users.c)
B_RETVAL, C_RETVAL, D_RETVAL = -EIO, -EINVAL, -EPERM

PEERS = {
    "A": "second livepatch (klp_user2)",
    "B": "fail_function",
    "C": "BPF kprobe + bpf_override_return",
    "D": "BPF fmod_ret",
    "E": "kprobe with post_handler",
    "F": "BPF fexit",
    "G": "function_graph tracer",
    "H": "kretprobe",
    "I": "fprobe with exit_handler",
    "J": "plain ftrace_ops",
    "K": "BPF fentry",
    "L": "fprobe without exit_handler",
    "M": "kprobe without post_handler",
    "N": "function tracer",
}

# lpc26-truth.md 2.2: (peer, order) -> (label, second registration, caller
# sees, enabled_functions with both). order: "consumer-first" | "livepatch-first".
MEASURED = {
    ("A", "consumer-first"): ("Self", "0", "klp2", "1:IM"),
    ("A", "livepatch-first"): ("Self", "0", "klp2", "1:IM"),
    ("B", "consumer-first"): ("-EBUSY", "-EBUSY", "B(EIO)", "1:RIM"),
    ("B", "livepatch-first"): ("-EBUSY", "-EBUSY", "klp1", "1:IM"),
    ("C", "consumer-first"): ("Suppressed", "0", "C1(EINVAL)", "2:RIM"),
    ("C", "livepatch-first"): ("Suppressed", "0", "klp1", "2:RIM"),
    ("D", "consumer-first"): ("Suppressed", "0", "D1(EPERM)", "2:RIDM"),
    ("D", "livepatch-first"): ("Override", "0", "D1(EPERM)", "2:RIDM"),
    ("E", "consumer-first"): ("-EBUSY", "-EBUSY", "orig", "1:RIM"),
    ("E", "livepatch-first"): ("-EBUSY", "-EBUSY", "klp1", "1:IM"),
    ("F", "consumer-first"): ("OK", "0", "klp1", "2:RIDM"),
    ("F", "livepatch-first"): ("OK", "0", "klp1", "2:RIDM"),
    ("G", "consumer-first"): ("Stale Symbols", "0", "klp1", "2:IM"),
    ("G", "livepatch-first"): ("Stale Symbols", "0", "klp1", "2:IM"),
    ("H", "consumer-first"): ("OK", "0", "klp1", "2:RIM"),
    ("H", "livepatch-first"): ("OK", "0", "klp1", "2:RIM"),
    ("I", "consumer-first"): ("OK†", "0", "klp1", "2:IM"),
    ("I", "livepatch-first"): ("OK", "0", "klp1", "2:IM"),
    ("J", "consumer-first"): ("Stale Symbols†", "0", "klp1", "2:IM"),
    ("J", "livepatch-first"): ("Stale Symbols", "0", "klp1", "2:IM"),
    ("K", "consumer-first"): ("Stale Symbols", "0", "klp1", "2:RIDM"),
    ("K", "livepatch-first"): ("Stale Symbols", "0", "klp1", "2:RIDM"),
    ("L", "consumer-first"): ("Stale Symbols†", "0", "klp1", "2:IM"),
    ("L", "livepatch-first"): ("Stale Symbols", "0", "klp1", "2:IM"),
    ("M", "consumer-first"): ("Stale Symbols", "0", "klp1", "2:RIM"),
    ("M", "livepatch-first"): ("Stale Symbols", "0", "klp1", "2:RIM"),
    ("N", "consumer-first"): ("Stale Symbols", "0", "klp1", "2:IM"),
    ("N", "livepatch-first"): ("Stale Symbols", "0", "klp1", "2:IM"),
}
ORDERS = ("consumer-first", "livepatch-first")


# -- the suite's livepatches ---------------------------------------------------------


def _mutator_new_func(banner: str):
    def show(ctx, seq, *args):
        mod = ctx.kernel.modules.find_module(ctx.sym.owner.name)
        if mod.params.get("magic_ret"):
            mod.params["magic_ret"] = 0  # exactly one probe read
            return MAGIC_RET
        seq.append(banner + "\n")
        return 0

    return show


def _livepatch(name: str, new_name: str, banner: str) -> ModuleSpec:
    class Mutator(LivepatchCode):
        def objects(self):
            return [KlpObject(None, [KlpFunc(FUNC, self.sym(new_name))])]

    return ModuleSpec(
        name,
        Mutator,
        livepatch=True,
        params=(ParamSpec("magic_ret", "int", 0o644, 0),),
        functions=(FunctionSpec(new_name, _mutator_new_func(banner)),),
        # klp_sample_mutator.c tags its new_func too
        error_injection=((new_name, "ERRNO"),),
    )


J_MODULE_NAME = "ftrace_observer_user1"
J_MODULE = '[[ftrace_ops]]\nfuncs = ["cmdline_proc_show"]\n'

KLP1 = _livepatch("klp_sample_mutator", "livepatch_cmdline_proc_show", "CLASS 1 MUTATOR ACTIVE")
KLP2 = _livepatch("klp_user2", "livepatch2_cmdline_proc_show", "CLASS 1 MUTATOR #2 ACTIVE")


# -- one scenario ---------------------------------------------------------------------------


class Suite:
    """One booted kernel with the suite's patches and its consumers."""

    def __init__(self, fixed: bool = True):
        self.session = Session("7.1", definitions={J_MODULE_NAME: J_MODULE})
        self.system = self.session.system
        self.kernel = self.system.kernel
        sym, kprobes = self.kernel.vmlinux.lookup(FUNC), self.system.kprobes
        assert sym is not None and kprobes is not None  # 7.1 has both
        self.sym, self.kprobes = sym, kprobes
        if fixed:
            kprobes.arm_error_ignored = False  # patch 0001
        self.system.error_injection.add_vmlinux_entry(FUNC)  # patch 0002
        self.peer_state: dict = {}
        self.saw: list[str] = []  # what the peer attributed calls to
        self.regs_ip: list[str] = []  # what the peer's entry handler saw in regs->ip
        self.returns: list[int] = []  # what the peer's return hook saw

    # livepatches
    def load_klp(self, spec: ModuleSpec) -> int:
        kernel, klp = self.kernel, self.system.klp
        ret = kernel.modules.load_module(spec, [])
        for _ in range(600):
            if klp.transition_patch is None:
                break
            kernel.clock.advance(100_000_000)
        return ret

    # observers the suite builds as modules
    def _entry_ops(self, name: str, exit_hook: bool = False, regs_ip: bool = True) -> int:
        """An ftrace_ops observer; *regs_ip*: it records
        ftrace_regs_get_instruction_pointer() (I, J, L do; fgraph's G records
        only the ip argument)."""

        def handler(task, ip, ops, regs):
            self.saw.append(ip.name)
            if regs_ip:
                self.regs_ip.append(regs.ip.name)
            if exit_hook:
                self.peer_state["pending"] = self.peer_state.get("pending", 0) + 1

        ops = FtraceOps(name, handler)
        self.kernel.exports["ftrace"].ftrace_set_filter_ip(ops, self.sym)
        if exit_hook:
            self.kernel.call_observers.append(self._exit_hook)
        return self.system.ftrace.register_ftrace_function(ops)

    def _exit_hook(self, task, sym, target, result) -> None:
        if sym is self.sym and self.peer_state.get("pending"):
            self.peer_state["pending"] -= 1
            self.returns.append(result)

    def attach_peer(self, peer: str) -> int:
        """Attach consumer *peer*: 0 or the errno its registration returned."""
        system, kernel = self.system, self.kernel
        bpf = system.bpf
        if peer == "A":
            return self.load_klp(KLP2)
        if peer == "B":
            fs = kernel.fs
            ret = fs.write("/sys/kernel/debug/fail_function/inject", FUNC)
            if ret < 0:
                return ret
            fs.write(f"/sys/kernel/debug/fail_function/{FUNC}/retval", f"{B_RETVAL % 2**64:#x}")
            fs.write("/sys/kernel/debug/fail_function/probability", "100")
            fs.write("/sys/kernel/debug/fail_function/times", "1000")
            fs.write("/sys/kernel/debug/fail_function/verbose", "0")
            return 0
        if peer in "CDFK":
            kind = {
                "C": LinkKind.KPROBE,
                "D": LinkKind.FMOD_RET,
                "F": LinkKind.FEXIT,
                "K": LinkKind.FENTRY,
            }[peer]
            try:
                link = bpf.attach(
                    kind,
                    [(None, FUNC)],
                    override=C_RETVAL if peer == "C" else None,
                    ret=D_RETVAL if peer == "D" else 0,
                )
            except AttachError as e:
                return e.errno
            self.peer_state["link"] = link
            return 0
        if peer in "EHM":
            kprobes = self.kprobes

            def pre(kp, regs, task):
                self.saw.append(kp.addr.name)  # kp.addr / p->addr
                if peer == "H":
                    self.peer_state["pending"] = self.peer_state.get("pending", 0) + 1
                return 0

            post = (lambda *a: None) if peer == "E" else None
            kp = kprobes.new_kprobe(FUNC, pre_handler=pre, post_handler=post)
            if peer == "H":
                kernel.call_observers.append(self._exit_hook)
            return kprobes.register_kprobe(kp)
        if peer == "G":
            # The function_graph tracer through tracefs, as lib_coexist.sh does.
            kernel.fs.write("/sys/kernel/tracing/set_ftrace_filter", FUNC)
            ret = kernel.fs.write("/sys/kernel/tracing/current_tracer", "function_graph")
            return 0 if ret > 0 else ret
        if peer == "I":
            return self._entry_ops("fprobe_graph_ops", exit_hook=True)
        if peer == "J":
            # ftrace_observer_user1.ko: a plain ftrace_ops module, as the
            # module definitions of tests/scenarios/tracefs build it.
            spec = self.session.resolver.resolve(J_MODULE_NAME)
            return kernel.modules.load_module(spec, [])
        if peer == "L":
            return self._entry_ops("fprobe_ftrace_ops")
        if peer == "N":
            kernel.fs.write("/sys/kernel/tracing/set_ftrace_filter", FUNC)
            ret = kernel.fs.write("/sys/kernel/tracing/current_tracer", "function")
            return 0 if ret > 0 else ret
        raise ValueError(peer)

    def attach(self, who: str) -> int:
        return self.load_klp(KLP1) if who == "klp" else self.attach_peer(who)

    def j_module(self) -> TargetModule:
        """Peer J's module code."""
        mod = self.kernel.modules.find_module(J_MODULE_NAME)
        assert mod is not None and isinstance(mod.code, TargetModule)
        return mod.code

    def call(self) -> tuple[str, int]:
        kernel = self.kernel
        seq: list[str] = []
        target, result = kernel.invoke(kernel.sched.current, self.sym, seq)
        if target is not None and target.name == "livepatch_cmdline_proc_show":
            return "klp1", result
        if target is not None and target.name == "livepatch2_cmdline_proc_show":
            return "klp2", result
        if target is self.sym:
            return "orig", result
        names = {-EIO: "B(EIO)", -EINVAL: "C1(EINVAL)", -EPERM: "D1(EPERM)"}
        return names.get(result, f"ret={result}"), result


@dataclass
class Cell:
    """One scenario's result, as the suite records it."""

    peer: str
    order: str
    label: str
    second: str  # the contender's registration: "0" or "-EBUSY"
    outcome: str  # what the read saw: klp1, klp2, orig, B(EIO), ...
    site: str  # enabled_functions <count>:<flags> with both attached
    attribution: str
    note: str = ""


def run_cell(peer: str, order: str, fixed: bool = True) -> Cell:
    s = Suite(fixed)
    first, second = ("klp", peer) if order == "livepatch-first" else (peer, "klp")
    if peer == "A":
        first, second = "klp", "A"
    r1 = s.attach(first)
    assert r1 == 0, (peer, order, first, r1)
    r2 = s.attach(second)
    site = s.system.ftrace.site_state(s.sym)
    s.saw.clear()
    s.regs_ip.clear()
    s.returns.clear()
    outcome, _ = s.call()
    saw = list(s.saw)
    regs_ip = list(s.regs_ip)
    link = s.peer_state.get("link")
    if link is not None:
        saw = [e.func for e in link.seen]
    if peer == "G":  # the graph's entries: what fgraph recorded (the ip argument)
        saw = [e.sym.name for e in s.system.tracer.buffer if e.kind == "gent" and e.sym]
    if peer == "J":  # what its ftrace_ops callback saw (it logs the same)
        hits = s.j_module().hits
        saw = [h.ip.name for h in hits]
        regs_ip = [h.regs_ip.name for h in hits]
    if peer == "N":  # the trace line: "cmdline_proc_show <-..."
        saw = [e.split(": ", 1)[1].split(" <-")[0] for e in s.system.tracer.entries]
    ret_seen = None
    if peer in "FHI" and outcome == "klp1":
        klp1 = s.kernel.modules.find_module(KLP1.name)
        assert klp1 is not None  # loaded by the cell
        klp1.params["magic_ret"] = MAGIC_RET
        s.returns.clear()
        if link is not None:
            link.seen.clear()
        s.call()
        if link is not None:
            seen = [e.saw_return for e in link.seen if e.phase is CallPhase.EXIT]
            ret_seen = int(seen[-1]) if seen else None
        else:
            ret_seen = s.returns[-1] if s.returns else None
    label = _classify(peer, order, r2, outcome, ret_seen, regs_ip)
    attribution = ",".join(sorted(set(saw))) or "-"
    if ret_seen is not None:
        attribution += f" ret={ret_seen}"
    second = "0" if r2 == 0 else f"-{errno_name(r2)}"
    return Cell(peer, order, label, second, outcome, site, attribution)


def _classify(peer, order, r2, outcome, ret_seen, regs_ip) -> str:
    """run_coexistence_experiment.sh, L152-171."""
    if r2:
        return f"-{errno_name(r2)}"
    if peer == "A":
        return "Self"
    winner = {"klp1": "A", "B(EIO)": "B", "C1(EINVAL)": "C", "D1(EPERM)": "D"}.get(outcome)
    contender = "klp" if order == "consumer-first" else peer
    dagger = "†" if "livepatch_cmdline_proc_show" in regs_ip else ""
    if winner not in (None, "A"):
        return "Override" if contender == winner else "Suppressed"
    if winner == "A":
        if peer in "BCDE":
            return "Override" if contender == "klp" else "Suppressed"
        if peer in "FHI" and ret_seen == MAGIC_RET:
            return "OK" + dagger
        return "Stale Symbols" + dagger
    return f"Unclassified({outcome})"


def run_table(fixed: bool = True) -> list[Cell]:
    return [run_cell(p, o, fixed) for p in PEERS for o in ORDERS]


def render() -> str:
    """docs/truth-table.md."""
    cells = run_table()
    released = {(c.peer, c.order): c for c in (run_cell(p, "livepatch-first", False)
                for p in "BE")}  # fmt: skip
    out = [
        "# Livepatch and ftrace consumers: who wins (model vs. measured)",
        "",
        "Generated by `klpsim truth-table > docs/truth-table.md`;",
        "tests/test_bpf_truth_table.py checks that the model still matches.",
        "",
        "Target: `cmdline_proc_show`. *Measured* is chuyee/lpc26-livepatch on an",
        "x86_64 mainline kernel with the suite's patches 0001 and 0002",
        "(lpc26-truth.md, 2.2); *model* is klpsim's `7.1` profile with the same two",
        "patches. consumer-first: the consumer attaches, then the livepatch;",
        "livepatch-first: the other way round. † = an entry handler saw",
        "regs->ip == new_func. Outcome: what `cat /proc/cmdline` saw (`klp1`: the",
        "livepatch's new_func ran; `orig`: the original ran; `B(EIO)` etc.: the",
        "read failed with the peer's injected error).",
        "",
        "| Peer | Order | Label (model) | Label (measured) | 2nd registration | Outcome |"
        " Measured outcome | Site (model) | Site (measured) | Peer's attribution |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        m = MEASURED[(c.peer, c.order)]
        out.append(
            f"| {c.peer} {PEERS[c.peer]} | {c.order} | {c.label} | {m[0]} | {c.second} |"
            f" {c.outcome} | {m[2]} | {c.site} | {m[3]} | {c.attribution} |"
        )
    out += [
        "",
        'On 7.1 as released (587e8e6d640b, "kprobes: Adopt guard() and',
        'scoped_guard()", v6.14, drops the arming error in __register_kprobe()),',
        "the two livepatch-first -EBUSY cells read instead:",
        "",
        "| Peer | Order | Label | 2nd registration | Outcome | Site |",
        "|---|---|---|---|---|---|",
    ]
    for c in released.values():
        out.append(
            f"| {c.peer} {PEERS[c.peer]} | {c.order} | {c.label} | {c.second} | {c.outcome} |"
            f" {c.site} |"
        )
    out += [
        "",
        "The registration returns 0, but the probe is absent from",
        "`kprobes/list` and never fires: the site keeps the livepatch alone.",
        "",
    ]
    return "\n".join(out)
