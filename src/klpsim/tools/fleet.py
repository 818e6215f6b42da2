"""``klpsim plan --fleet DIR``: the planner over every host snapshot in DIR,
grouped by outcome and reason.

    klpsim plan --fleet DIR NEW.ko|NEW.toml... [--kernel PROFILE] [--json]
                [--jobs J] [--ray ADDRESS|local]

Each snapshot is planned on its own (tools/plan.py ``plan()``: boot into it,
load the new modules in order) and reduced to one outcome:

* ``accepts``: every load accepted and every transition completes (signals
  allowed), nothing reverted silently;
* ``refuses``: the first refused load, with the rule, the function or state
  id and the other patch (check's refusal), or ``busy`` when a host patch is
  still in transition (-EBUSY);
* ``stalls``: a transition that does not complete (or may not: tasks with
  an unknown stack), and on what: the blocking tasks' function and why;
* ``silent-revert``: accepted, but a function of another patch reverts to
  the original;
* ``unreadable``: a snapshot the planner cannot read or boot, with its one
  line;
* ``error``: klpsim itself failed on the host (a bug to report), with the
  exception as one line; the other hosts are still planned.

Hosts with the same outcome and reason form one group. The hosts are dealt
round-robin to the workers of tools/workers.py (in this process for
``--jobs 1``, forked processes, or Ray actors); each worker plans its share
one chunk per call and keeps nothing between hosts, so the report does not
depend on the pool. docs/plan.md ("Fleets") documents it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klpsim.artifacts.snapshot import SnapshotError, Unknown, read_snapshot
from klpsim.kernel.errno import errno_name
from klpsim.tools.plan import Plan, PlanError, plan
from klpsim.tools.workers import LocalPool, ProcessPool, RayPool

__all__ = [
    "FleetError",
    "FleetPlanner",
    "HostOutcome",
    "OUTCOMES",
    "fleet_hosts",
    "group",
    "outcome_of",
    "plan_fleet",
    "render_fleet",
    "fleet_json",
    "run_fleet",
]

#: Report order of the outcomes.
OUTCOMES = ("accepts", "refuses", "stalls", "silent-revert", "unreadable", "error")
#: Outcomes whose hosts each keep their own one-line reason: the group's text.
PER_HOST = {"unreadable": "cannot be planned", "error": "klpsim failed (a bug: please report it)"}
#: Hosts per task: a worker takes the next chunk when it is free (the unit of progress).
CHUNK = 10
#: More hosts than this make a long run, with progress on stderr.
LONG = 100


class FleetError(Exception):
    """Bad input for the whole fleet (no such DIR, no snapshot): exit status 2."""


@dataclass(frozen=True)
class HostOutcome:
    """One host's verdict, reduced to what hosts are grouped by."""

    host: str
    """The snapshot's name in DIR."""
    outcome: str
    """One of :data:`OUTCOMES`."""
    reason: tuple[tuple[str, Any], ...]
    """What the group is keyed on: (key, value) pairs, e.g. rule and function."""
    text: str
    """The reason as one line."""


def fleet_hosts(directory: str) -> list[str]:
    """The snapshots in *directory*: every entry not starting with a dot, by name."""
    d = Path(directory)
    if not d.is_dir():
        raise FleetError(f"{directory}: no such directory")
    names = sorted(n for n in os.listdir(d) if not n.startswith("."))
    if not names:
        raise FleetError(f"{directory}: no snapshot in it")
    return [str(d / n) for n in names]


def _blocking(left: list[dict[str, Any]]) -> str:
    """The distinct things a stalled transition waits on, as one phrase."""
    what = []
    for b in left:
        who = "kthread" if b["kthread"] else "task"
        if b["why"] == "sleeping":
            w = f"{who} asleep in {b['code']} ({b['function']})"
        elif b["why"] == "unknown-stack":
            w = f"{who} with an unknown stack"
        else:
            w = f"{who} {b['why']}" + (f" in {b['function']}" if b["function"] else "")
        if w not in what:
            what.append(w)
    return "; ".join(sorted(what))


def outcome_of(host: str, p: Plan) -> HostOutcome:
    """The first load that is not fine decides; else ``accepts``."""
    for pl in p.loads:
        load = pl.load
        if not load.accepted:
            reason: tuple[tuple[str, Any], ...] = (
                ("patch", load.patch),
                ("rule", load.rule),
                ("function", load.function),
                ("state_id", load.state_id),
                ("other", load.other),
                ("error", f"-{errno_name(load.errno)}" if load.errno < 0 else None),
                ("reason", load.reason),
            )
            what = [load.reason or f"-{errno_name(load.errno)}"]
            what += [f"{k.replace('_', ' ')} {v}" for k, v in reason[1:5] if v is not None]
            return HostOutcome(host, "refuses", reason, f"{load.patch}: {', '.join(what)}")
        t = pl.transition
        if t is not None and t["outcome"] in ("stalls", "may-stall"):
            on = _blocking(t["left"])
            verb = "stalls" if t["outcome"] == "stalls" else "may stall"
            return HostOutcome(
                host,
                "stalls",
                (("patch", load.patch), ("outcome", t["outcome"]), ("on", on)),
                f"{load.patch}: {verb} on {on}",
            )
        if load.silent_reverts:
            funcs = ", ".join(
                sorted(f"{c['function']} of {c['before']}" for c in load.silent_reverts)
            )
            return HostOutcome(
                host,
                "silent-revert",
                (("patch", load.patch), ("reverts", funcs)),
                f"{load.patch}: silently reverts {funcs}",
            )
    replaced = sorted({r for pl in p.loads for r in pl.load.replaces})
    text = f"replaces {', '.join(replaced)}" if replaced else "replaces nothing"
    return HostOutcome(host, "accepts", (("replaces", tuple(replaced)),), text)


class FleetPlanner:
    """A worker: plans the hosts it is given, one call per chunk (built by
    tools/workers.py's pools; pickles by reference, for Ray)."""

    def __init__(self, files: Sequence[str], kernel: str | None):
        self.files = list(files)
        self.kernel = kernel

    def host(self, path: str) -> HostOutcome:
        name = Path(path).name
        try:
            snap = read_snapshot(path)
            if isinstance(snap.livepatches, Unknown):
                raise SnapshotError(f"{path}: {snap.livepatches.reason}")
            return outcome_of(name, plan(snap, self.files, self.kernel))
        except (SnapshotError, PlanError) as e:
            line = str(e).splitlines()[0] if str(e) else type(e).__name__
            return HostOutcome(name, "unreadable", (), line)
        except Exception as e:  # noqa: BLE001 (klpsim crashed on this host: plan the others)
            line = f"{type(e).__name__}: {str(e).splitlines()[0]}" if str(e) else type(e).__name__
            return HostOutcome(name, "error", (), f"klpsim failed: {line}")

    def plan_hosts(self, paths: list[str]) -> list[HostOutcome]:
        return [self.host(p) for p in paths]

    def cpu_seconds(self) -> float:
        """This worker's CPU time so far (its process's, for forked workers)."""
        return time.process_time()


class _Factory:
    def __init__(self, files: Sequence[str], kernel: str | None):
        self.files = list(files)
        self.kernel = kernel

    def __call__(self, index: int, jobs: int) -> FleetPlanner:
        return FleetPlanner(self.files, self.kernel)


def plan_fleet(
    paths: Sequence[str],
    files: Sequence[str],
    kernel: str | None = None,
    jobs: int = 1,
    ray: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    cpu: list[float] | None = None,
) -> list[HostOutcome]:
    """Every host of *paths* planned: in this process (jobs 1), on *jobs*
    forked processes, or on *jobs* Ray actors at *ray* (RayUnavailable).
    *cpu*, when given, receives each worker's CPU seconds for the run."""
    factory = _Factory(files, kernel)
    pool: Any
    if ray is not None:
        pool = RayPool(factory, jobs, ray)
    elif jobs > 1:
        pool = ProcessPool(factory, jobs)
    else:
        pool = LocalPool(factory, 1)
    everyone = [() for _ in range(pool.jobs)]
    chunks = [(list(paths[i : i + CHUNK]),) for i in range(0, len(paths), CHUNK)]
    out: list[HostOutcome] = []
    try:
        cpu0 = pool.call("cpu_seconds", everyone) if cpu is not None else []
        for _, planned in pool.feed("plan_hosts", chunks):
            out += planned
            if progress is not None:
                progress(len(out), len(paths))
        if cpu is not None:
            cpu1 = pool.call("cpu_seconds", everyone)
            cpu[:] = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    finally:
        pool.close()
    return sorted(out, key=lambda h: h.host)


def group(hosts: Sequence[HostOutcome]) -> list[dict[str, Any]]:
    """Groups in :data:`OUTCOMES` order, then by size (largest first) and
    reason; unreadable hosts and errors each keep their own line."""
    groups: dict[tuple[str, Any], list[HostOutcome]] = {}
    for h in hosts:
        key = (h.outcome, h.reason if h.outcome not in PER_HOST else ())
        groups.setdefault(key, []).append(h)
    out: list[dict[str, Any]] = []
    for (outcome, reason), members in groups.items():
        out.append(
            {
                "outcome": outcome,
                "reason": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in reason if v is not None
                },
                "text": members[0].text if outcome not in PER_HOST else PER_HOST[outcome],
                "hosts": sorted(m.host for m in members),
                "why": {m.host: m.text for m in members} if outcome in PER_HOST else None,
            }
        )
    out.sort(key=lambda g: (OUTCOMES.index(g["outcome"]), -len(g["hosts"]), g["text"]))
    for g in out:
        if g["why"] is None:
            del g["why"]
    return out


def fleet_json(
    directory: str, files: Sequence[str], hosts: Sequence[HostOutcome]
) -> dict[str, Any]:
    counts = {o: sum(h.outcome == o for h in hosts) for o in OUTCOMES}
    return {
        "fleet": directory,
        "new": list(files),
        "hosts": len(hosts),
        "counts": counts,
        "ok": counts["accepts"] == len(hosts),
        "groups": group(hosts),
    }


def render_fleet(report: dict[str, Any], max_hosts: int = 8) -> str:
    """The human view: the counts, then one block per group."""
    c = report["counts"]
    out = [
        f"fleet {report['fleet']}: {report['hosts']} host(s), new: {', '.join(report['new'])}",
        "  " + ", ".join(f"{c[o]} {o}" for o in OUTCOMES if o != "error" or c[o]),
    ]
    for g in report["groups"]:
        n = len(g["hosts"])
        out.append(f"{g['outcome']}: {n} host(s): {g['text']}")
        if "why" in g:
            out += [f"    {h}: {g['why'][h]}" for h in g["hosts"]]
            continue
        shown = g["hosts"][:max_hosts]
        more = f" ... and {n - len(shown)} more" if n > len(shown) else ""
        out.append("    " + " ".join(shown) + more)
    verdict = "OK" if report["ok"] else "FAIL"
    out.append(f"verdict: {verdict}: {c['accepts']} of {report['hosts']} host(s) accept")
    return "\n".join(out) + "\n"


# -- the command --------------------------------------------------------------------------


def run_fleet(
    args: Any, bad: Callable[[str], int], progress: Callable[..., Any] | None = None
) -> int:
    """``klpsim plan --fleet DIR NEW...``: exit 0 when every host accepts,
    1 otherwise, 2 on bad input (one line from *bad*)."""
    import json
    import sys

    from klpsim.livepatch.profiles import DEFAULT_PROFILE, get_profile
    from klpsim.tools.check import CheckError, read_inputs
    from klpsim.tools.workers import RayUnavailable

    files = [args.snapshot, *args.files]
    jobs = 1 if args.jobs is None else args.jobs
    if jobs < 1:
        return bad(f"--jobs {jobs}: must be at least 1")
    try:
        paths = fleet_hosts(args.fleet)
        # the new modules once, before any host: a bad one is bad input, not a host's outcome
        patches, _ = read_inputs(files, get_profile(args.kernel or DEFAULT_PROFILE))
    except (FleetError, CheckError) as e:
        return bad(str(e))
    if not patches:
        return bad(f"{files[0]}: no livepatch among the files")
    shown = None
    if progress is not None and len(paths) > LONG:  # about 20 lines (or bar updates)
        shown = progress("plan --fleet", len(paths))
        step = max(50, len(paths) // 20)

        def planned(n: int, total: int) -> None:
            if n == total or n - shown.done >= step:
                shown.advance("hosts planned", n - shown.done)

    try:
        hosts = plan_fleet(
            paths,
            files,
            args.kernel,
            jobs,
            args.ray,
            None if shown is None else planned,
        )
    except RayUnavailable as e:
        return bad(str(e))
    finally:
        if shown is not None:
            shown.close()
    report = fleet_json(args.fleet, files, hosts)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render_fleet(report))
    return 0 if report["ok"] else 1


# -- synthetic fleets ---------------------------------------------------------------------

#: The family synthetic hosts draw from: replace-set, 4 functions, 2 sets, 3 worker tasks.
SYNTHETIC_PROFILE, SYNTHETIC_FUNCS, SYNTHETIC_SETS, SYNTHETIC_TASKS = "replace-set", 4, 2, 3


def synthetic_host(seed: int, patches: int = 3) -> Any:
    """A Session in a random host state, from *seed*: up to *patches* loads
    drawn from every patch the explorer's bounds allow (tools/explore.py
    ``every_definition()``: function subsets, replace sets, replace),
    worker tasks (one a kthread) asleep in those functions, some before the
    loads (so a load may stay in transition on them) and some after."""
    import random

    from klpsim.session import Session
    from klpsim.tools.explore import Bounds, every_definition, function_names

    rng = random.Random(seed)
    b = Bounds(
        SYNTHETIC_PROFILE, patches, SYNTHETIC_FUNCS, SYNTHETIC_SETS, 0, SYNTHETIC_TASKS, 1,
        module_funcs=0,
    )  # fmt: skip
    names = function_names(b)
    fam = every_definition(b)
    chosen = [fam[rng.randrange(len(fam))] for _ in range(rng.randint(0, patches))]
    defs = {f"lp{i + 1}": d.toml(names, len(names)) for i, d in enumerate(chosen)}
    session = Session(b.profile, definitions=defs)
    lines = []
    for t in range(b.tasks):
        lines.append(f"spawn_task worker{t}" + (" --kthread" if t == 0 else ""))
    sleepers = [(1001 + t, rng.choice(names)) for t in range(b.tasks) if rng.random() < 0.6]
    early = [s for s in sleepers if rng.random() < 0.3]
    lines += [f"sleep_task {pid} {fn}" for pid, fn in early]
    for name in defs:  # each transition gets its 60 s (signals after 15), as plan gives it
        lines += [f"insmod test_modules/{name}.ko", "sleep 60"]
    lines += [f"sleep_task {pid} {fn}" for pid, fn in sleepers if (pid, fn) not in early]
    session.run("\n".join(lines) + "\n")
    return session


def synthetic_fleet(directory: str | Path, hosts: int, seed: int = 0) -> list[Path]:
    """*hosts* snapshots ``host-NNNN.tar.gz`` in *directory*, host *i* the
    state :func:`synthetic_host` makes from ``seed * 1_000_003 + i``."""
    from klpsim.artifacts.snapshot_write import write_snapshot

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(hosts):
        session = synthetic_host(seed * 1_000_003 + i)
        out.append(write_snapshot(session.system, d / f"host-{i:04d}.tar.gz"))
    return out


#: A new cumulative patch for synthetic fleets: set 0, replacing, on two of the functions.
SYNTHETIC_NEW = """livepatch = true
replace = true
replace_set = 0
[[objects]]
name = "vmlinux"
funcs = [ { old_name = "cmdline_proc_show" }, { old_name = "meminfo_proc_show" } ]
"""
