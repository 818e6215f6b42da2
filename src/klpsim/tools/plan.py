"""``klpsim plan``: what loading new livepatches will do on the host a
snapshot was taken on.

    klpsim plan SNAP NEW.ko|NEW.toml... [--kernel PROFILE] [--json]

The model boots into the snapshot (hostboot.py: the host's patches through
the loader, its tasks with their stacks, its kprobes and BPF trampolines,
its kallsyms), then loads the new modules in order with ``klpsim check``'s
loader (tools/check.py ``LoadRun``), so each load is judged by the same
code: accepted or refused (rule, function or state id, the other patch),
the patches it replaces and what each function then runs.

On top of check, for each load:

* the transition: which tasks block it right after the load
  (klp_task_blocker(), on which patched or nop'ed function), then the
  outcome after 60 simulated seconds (klp_transition_work_fn() every
  second, signals after 15): ``completes``, ``completes after signals``,
  ``stalls`` (a kthread asleep in a touched function: signals only wake
  it), or ``may stall`` when what is left is tasks whose stack the
  snapshot could not tell (taken as blocking: never guessed);
* the livepatch modules left loaded (a replaced patch's module stays until
  rmmod);
* each kprobe and BPF program on an affected function before and after
  (model/health.py): active, silent or gone; when the load is refused by
  ftrace, the attachments on its functions are said to block it;
* the kernel log lines and the /sys/kernel/livepatch tree after.

Exit status: 0 when every load is accepted, every transition completes
(signals allowed) and nothing is silently reverted; 1 otherwise; 2 on bad
input (one line). docs/plan.md documents the output and the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from klpsim.artifacts.snapshot import Snapshot, SnapshotError, Unknown, read_snapshot
from klpsim.hostboot import HostBoot, HostBootError
from klpsim.kernel.symbols import Symbol
from klpsim.livepatch.structs import KLP_TRANSITION_PATCHED
from klpsim.livepatch.transition import klp_task_blocker
from klpsim.model.health import attachment_health, entry_for, kprobe_health
from klpsim.modules.definition import build_module
from klpsim.session import Session
from klpsim.tools.check import (
    CheckError,
    Load,
    LoadRun,
    Patch,
    Report,
    change_lines,
    load_json,
    read_inputs,
    refusal,
)

__all__ = ["PlanError", "Plan", "PlanLoad", "plan", "to_json", "render", "run_plan"]


class PlanError(Exception):
    """Bad input: one line naming the file (exit status 2)."""


@dataclass
class PlanLoad:
    """One new module's load on the host."""

    load: Load
    transition: dict[str, Any] | None = None
    replaces_pending: list[str] = field(default_factory=list)
    """The patches it replaces once its transition completes (it has not)."""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    modules_left: list[str] = field(default_factory=list)
    sysfs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        t = self.transition
        return self.load.ok and (
            t is None or t["outcome"] in ("completes", "completes-after-signals")
        )


@dataclass
class Plan:
    snapshot: str
    host: HostBoot
    host_patches: list[Patch]
    patches: list[Patch]
    loads: list[PlanLoad]
    host_transition: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(pl.ok for pl in self.loads)


# -- running ------------------------------------------------------------------------------


def _blocker_json(b: Any, host: HostBoot, kthread: bool) -> dict[str, Any]:
    why = b.why
    if why == "unreliable" and b.pid in host.unknown_stacks:
        why = "unknown-stack"
    return {
        "pid": b.pid,
        "comm": b.comm,
        "kthread": kthread,
        "why": why,
        "function": b.function,
        "code": b.code,
        "nop": b.nop,
    }


def _blockers(session: Session, host: HostBoot) -> list[dict[str, Any]]:
    """Every task the transition waits for now, and why (klp_task_blocker())."""
    klp = session.klp
    out = []
    for task in session.kernel.sched.all_tasks():
        if task is session.kernel.sched.current:
            continue  # klpsim's own shell: it switches at its next return to user
        b = klp_task_blocker(klp, task)
        if b is not None and not task.is_idle:
            out.append(_blocker_json(b, host, task.is_kthread))
    return out


def _transition_now(session: Session, host: HostBoot) -> dict[str, Any] | None:
    patch = session.klp.transition_patch
    if patch is None:
        return None
    target_state = session.klp.target_state
    target = "patching" if target_state == KLP_TRANSITION_PATCHED else "unpatching"
    pending = [t.pid for t in session.kernel.sched.tasks.values() if t.patch_state != target_state]
    return {
        "patch": patch.name,
        "direction": target,
        "not_switched": len(pending),
        "blocking": _blockers(session, host),
    }


def _outcome(session: Session, host: HostBoot, t: dict[str, Any], signaled: bool) -> None:
    left = _blockers(session, host) if session.klp.transition_patch is not None else []
    t["signals"] = signaled
    t["left"] = left
    if session.klp.transition_patch is None:
        t["outcome"] = "completes-after-signals" if signaled else "completes"
    elif left and all(b["why"] == "unknown-stack" for b in left):
        t["outcome"] = "may-stall"
    else:
        t["outcome"] = "stalls"


def _attachment_states(session: Session) -> dict[str, dict[str, Any]]:
    """{name: {kind, function, entry, state, note}} of every kprobe and BPF link."""
    system = session.system
    out: dict[str, dict[str, Any]] = {}
    if system.trace_kprobes is not None and system.kprobes is not None:
        for kp in system.kprobes.probes:
            if kp.addr is None:
                continue
            state, note = kprobe_health(system, kp)
            name = kp.owner.removeprefix("trace_kprobe:") or kp.symbol_name
            entry = entry_for(system.klp, kp.addr)
            out[f"kprobe:{name}:{id(kp)}"] = {
                "name": name,
                "kind": "kretprobe" if kp.is_return else "kprobe",
                "function": _label(kp.addr) + (f"+{kp.addr_off:#x}" if kp.addr_off else ""),
                "entry": entry,
                "state": state,
                "note": note,
            }
    for h in attachment_health(system):
        sym = h.link.targets[0]
        out[f"bpf:{h.link.name}"] = {
            "name": h.link.name,
            "kind": f"bpf {h.link.kind}",
            "function": _label(sym),
            "entry": entry_for(system.klp, sym),
            "state": h.state,
            "note": h.note,
        }
    return out


def _label(sym: Symbol) -> str:
    return f"{sym.owner.name}:{sym.name}"


def _sysfs(session: Session) -> list[str]:
    """/sys/kernel/livepatch as ``grep -r . /sys/kernel/livepatch`` shows it
    (readable files; directories of functions as their own lines)."""
    fs = session.kernel.fs
    out: list[str] = []

    def walk(path: str) -> None:
        names = fs.listdir(path)
        if isinstance(names, int):
            return
        for name in names:
            p = f"{path}/{name}"
            sub = fs.listdir(p)
            if isinstance(sub, list):
                if "," in name:
                    out.append(p + "/")
                walk(p)
                continue
            text = fs.read(p)
            if isinstance(text, str):
                out.append(f"{p}: {text.rstrip()}")

    walk("/sys/kernel/livepatch")
    return out


def plan(snap: Snapshot, files: list[str], kernel: str | None = None) -> Plan:
    """Boot into *snap*, load *files* in order; PlanError on bad input."""
    try:
        session = Session.from_snapshot(snap, kernel)
    except HostBootError as e:
        raise PlanError(str(e)) from None
    host = session.host
    assert host is not None
    profile = session.system.profile
    try:
        patches, targets = read_inputs(files, profile)
    except CheckError as e:
        raise PlanError(str(e)) from None
    if not patches:
        raise PlanError(f"{files[0]}: no livepatch among the files")
    installed = [
        Patch(f"{snap.source}:/sys/kernel/livepatch/{d.name}", d, build_module(d, profile))
        for d in host.patches
    ]
    host_transition = _transition_now(session, host)
    try:
        run = LoadRun(profile, patches, targets, None, session=session, installed=installed)
    except CheckError as e:
        raise PlanError(str(e)) from None
    loads: list[PlanLoad] = []
    for p in patches:
        before = _attachment_states(session)
        pl = PlanLoad(Load(p.name, False))
        seen: dict[str, Any] = {}

        def started(name: str = p.name, seen: dict[str, Any] = seen) -> None:
            t = session.klp.transition_patch
            seen["t"] = _transition_now(session, host) if t and t.name == name else None
            seen["log"] = len(session.kernel.log.records)

        busy = session.klp.transition_patch
        pl.load = run.load(p, started)
        if busy is not None and not pl.load.accepted and pl.load.rule is None:
            # __klp_enable_patch(): -EBUSY while another transition runs; no message
            pl.load.reason = f"busy: {busy.name} is in transition"
        t = seen.get("t")
        if t is not None:
            later = [r.text for r in session.kernel.log.records[seen["log"] :]]
            _outcome(session, host, t, any("signaling remaining tasks" in x for x in later))
        pl.transition = t
        if pl.load.accepted:
            pl.replaces_pending = run.pending_replaces(p.name)
        after = _attachment_states(session)
        pl.attachments = _attachments(run, pl.load, before, after)
        pl.modules_left = sorted(
            m.name
            for m in session.kernel.modules.modules.values()
            if m.klp and m.name not in pl.load.patches_after
        )
        pl.sysfs = _sysfs(session)
        loads.append(pl)
    return Plan(snap.source, host, installed, patches, loads, host_transition)


def _attachments(
    run: LoadRun, load: Load, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The attachments on a function the load touched (or whose state changed)."""
    touched: set[Symbol] = set()
    for key in [c["function"] for c in load.changes] + (
        run.patches[load.patch].functions if not load.accepted else []
    ):
        sym = run._sym(key)
        if sym is not None:
            touched.add(sym)
    out = []
    for key, b in before.items():
        a = after.get(key)
        now = a["state"] if a is not None else "gone"
        untouched = b["entry"] not in touched and (a is None or a["entry"] not in touched)
        if untouched and now == b["state"]:
            continue
        if b["entry"] in touched and any(
            "failed to register ftrace handler" in line for line in load.log
        ):
            now = "blocks the load"  # klp_patch_func(): register_ftrace_function() failed
        out.append(
            {
                "name": b["name"],
                "kind": b["kind"],
                "function": b["function"],
                "before": b["state"],
                "after": now,
                "note": (a or b)["note"],
            }
        )
    return out


# -- output -------------------------------------------------------------------------------


def to_json(p: Plan) -> dict[str, Any]:
    h = p.host
    return {
        "snapshot": p.snapshot,
        "kernel": h.profile,
        "kernel_why": h.profile_why,
        "ok": p.ok,
        "host": {
            "patches": [
                {
                    "name": hp.name,
                    "from_ko": h.from_ko[hp.name],
                    "replace": hp.defn.replace,
                    "replace_set": hp.defn.replace_set,
                    "functions": hp.functions,
                    "states": [{"id": s.id, "version": s.version} for s in hp.defn.states],
                }
                for hp in p.host_patches
            ],
            "tasks": h.tasks,
            "unknown_stacks": len(h.unknown_stacks),
            "kprobes": h.kprobes,
            "bpf": h.bpf,
            "transition": p.host_transition,
        },
        "unknown": h.unknowns,
        "notes": h.notes,
        "loads": [
            {
                **load_json(pl.load),
                "transition": pl.transition,
                "replaces_when_complete": pl.replaces_pending,
                "attachments": pl.attachments,
                "modules_left": pl.modules_left,
                "sysfs": pl.sysfs,
            }
            for pl in p.loads
        ],
    }


_OUTCOME = {
    "completes": "completes",
    "completes-after-signals": "completes after signals (klp_send_signals(), 15 s)",
    "stalls": "STALLS: the transition never completes",
    "may-stall": "MAY STALL: only tasks whose stack the snapshot does not show are left",
}


def _blocker_line(b: dict[str, Any]) -> str:
    who = f"{b['pid']} {b['comm']}" + (" (kthread)" if b["kthread"] else "")
    if b["why"] == "sleeping":
        what = "the nop (revert) of" if b["nop"] else "patched"
        return f"{who}: sleeping in {b['code']}: {what} {b['function']}"
    if b["why"] == "unknown-stack":
        return f"{who}: stack unknown in the snapshot: may block"
    return f"{who}: {b['why']}"


def render(p: Plan) -> str:
    h = p.host
    out = [f"host {p.snapshot}: kernel {h.profile} ({h.profile_why})"]
    if p.host_patches:
        out.append("  patches, in klp_patches order:")
        for hp in p.host_patches:
            src = ".ko" if h.from_ko[hp.name] else "sysfs only"
            out.append(
                f"    {hp.name:24} replace {int(hp.defn.replace)}, replace_set "
                f"{hp.defn.replace_set}, {len(hp.functions)} function(s) ({src})"
            )
    else:
        out.append("  no livepatch loaded")
    unknown = f", {len(h.unknown_stacks)} with unknown stacks" if h.unknown_stacks else ""
    out.append(f"  tasks: {h.tasks}{unknown}")
    if h.kprobes or h.bpf:
        out.append(f"  kprobes: {len(h.kprobes)}, BPF trampolines: {len(h.bpf)}")
    if p.host_transition is not None:
        ht = p.host_transition
        out.append(
            f"  in transition: {ht['patch']} {ht['direction']}, "
            f"{ht['not_switched']} task(s) not switched, {len(ht['blocking'])} blocked"
        )
    if h.unknowns:
        out.append("unknown (what the snapshot cannot tell, and how the plan takes it):")
        out += [f"  {u}" for u in h.unknowns]
    report = Report(h.profile, [*p.host_patches, *p.patches], [], [pl.load for pl in p.loads])
    for i, pl in enumerate(p.loads, 1):
        load = pl.load
        out.append("")
        if not load.accepted and (load.reason or "").startswith("busy: "):
            out.append(f"load {i}: {load.patch}: REFUSED (-EBUSY): {load.reason}")
        elif not load.accepted:
            out.append(f"load {i}: {load.patch}: {refusal(load, report)}")
        else:
            rep = f", replaces {', '.join(load.replaces)}" if load.replaces else ""
            if pl.replaces_pending:
                rep = f", replaces {', '.join(pl.replaces_pending)} once its transition completes"
            out.append(f"load {i}: {load.patch}: accepted{rep}")
            out += change_lines(load)
        if pl.modules_left:
            out.append(
                f"  modules left loaded (replaced; rmmod frees them): {', '.join(pl.modules_left)}"
            )
        t = pl.transition
        if t is not None:
            out.append(
                f"  transition ({t['direction']}): {len(t['blocking'])} task(s) block it now"
            )
            out += [f"    {_blocker_line(b)}" for b in t["blocking"]]
            out.append(f"  outcome: {_OUTCOME[t['outcome']]}")
            if t["outcome"] in ("stalls", "may-stall"):
                out += [f"    still blocking: {_blocker_line(b)}" for b in t["left"]]
        elif load.accepted:
            out.append("  transition: completes at once (no task blocks it)")
        if pl.attachments:
            out.append("  kprobes and BPF programs on affected functions:")
            for a in pl.attachments:
                note = f" ({a['note']})" if a["note"] else ""
                out.append(
                    f"    {a['kind']} {a['name']} on {a['function']}: "
                    f"{a['before']} -> {a['after']}{note}"
                )
        out.append("  kernel log:")
        out += [f"    {line}" for line in load.log if line]
        out.append("  /sys/kernel/livepatch after:")
        out += [f"    {line}" for line in pl.sysfs] or ["    (empty)"]
    out.append("")
    refused = sum(not pl.load.accepted for pl in p.loads)
    stalls = sum(
        pl.transition is not None and pl.transition["outcome"] in ("stalls", "may-stall")
        for pl in p.loads
    )
    silent = sum(len(pl.load.silent_reverts) for pl in p.loads)
    out.append(
        f"verdict: {'OK' if p.ok else 'FAIL'}: {len(p.loads) - refused} of {len(p.loads)} "
        f"loads accepted, {stalls} transition(s) that may not complete, "
        f"{silent} silent revert(s), {len(h.unknowns)} unknown(s)"
    )
    return "\n".join(out) + "\n"


# -- the command --------------------------------------------------------------------------


def run_plan(args: Any, progress: Callable[..., Any] | None = None) -> int:
    """``klpsim plan``; *progress*: klpsim.progress.progress (``--fleet``'s display)."""
    import json
    import sys

    from klpsim.kernel.printk import escape
    from klpsim.livepatch.profiles import all_profiles

    def bad(msg: str) -> int:
        print(f"klpsim: {escape(msg)}", file=sys.stderr)
        return 2

    if args.kernel is not None and args.kernel not in all_profiles():
        return bad(f"unknown kernel profile '{args.kernel}' (see 'klpsim kernels')")
    if getattr(args, "fleet", None) is not None:
        from klpsim.tools.fleet import run_fleet

        return run_fleet(args, bad, progress)
    if getattr(args, "jobs", None) is not None or getattr(args, "ray", None) is not None:
        return bad("--jobs and --ray go with --fleet DIR")
    if not args.files:  # as argparse says it
        print("klpsim plan: error: the following arguments are required: NEW", file=sys.stderr)
        return 2
    try:
        snap = read_snapshot(args.snapshot)
    except SnapshotError as e:
        return bad(str(e))
    if isinstance(snap.livepatches, Unknown):  # read_snapshot() settles this; keep the type
        return bad(f"{args.snapshot}: {snap.livepatches.reason}")
    try:
        p = plan(snap, args.files, args.kernel)
    except PlanError as e:
        return bad(str(e))
    if args.json:
        sys.stdout.write(json.dumps(to_json(p), indent=2) + "\n")
    else:
        sys.stdout.write(render(p))
    return 0 if p.ok else 1
