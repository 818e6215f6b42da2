"""klpsim explore's targets, measured (issue 14, part 2).

    python benchmarks/explore_bench.py --quick          # CI smoke: a tiny bound, 1 and 2 jobs
    python benchmarks/explore_bench.py targets          # the issue's targets
    python benchmarks/explore_bench.py largest [--budget 600] [--profile P]... [--family every]
    python benchmarks/explore_bench.py speedup [--bound NAME]
    ... --write    # record the runs in src/klpsim/tools/data/explore.json

``targets``: ``replaceable`` finds a counterexample (and Petr's, with loads
and ticks only); ``replace-set`` and ``7.1`` search the issue's bound (4
patches x 3 functions x 2 sets x 1 state id x 2 tasks) to depth 8 on 2
processes. ``largest``: per profile, at that bound, the deepest level that
completes within the budget on 2 processes: one search with a time limit (a
BFS to depth 16 completes each level on the way; each level's completion
time is recorded, so the same run says how deep 60 s go); with ``--family
every``, each load any definition the bound allows (docs/explore.md).
``speedup``: the target's bound on replace-set with --jobs 1 and --jobs 2.

Every run records the load average before and after (the machine is shared:
compare figures only at a low load). ``klpsim semantics`` renders the
recorded runs as the explorer's table in docs/semantics.md.
"""

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.tools.explore import (  # noqa: E402
    Bounds,
    LocalBackend,
    explore,
    time_limit,
    write_counterexample,
)
from klpsim.tools.explore_backends import ProcessBackend  # noqa: E402

DATA = ROOT / "src" / "klpsim" / "tools" / "data" / "explore.json"
COUNTEREXAMPLES = ROOT / "tests" / "scenarios" / "explore"

TARGET = dict(patches=4, funcs=3, sets=2, states=1, tasks=2, depth=8)
"""The issue's bound for replace-set and 7.1."""
LARGEST = dict(TARGET, depth=16)
"""The bound whose depth ``largest`` pushes, per profile: the target's."""
PROFILES = ("7.1", "6.12", "6.1", "replace-set", "replaceable", "replace-tag", "replace-set-012")
SPEEDUP = Bounds("replace-set", **TARGET)
QUICK = Bounds(
    "replace-set", patches=2, funcs=2, sets=2, states=0, tasks=2, depth=3, module_funcs=0
)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def uptime() -> str:
    """What ``uptime`` prints (the load averages over 1, 5 and 15 minutes)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the workers)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(
    name: str,
    b: Bounds,
    jobs: int = 1,
    budget: float | None = None,
    first: bool = False,
    counterexamples: Path | None = None,
) -> dict[str, object]:
    """One search, as a record for explore.json."""
    before, up_before = loadavg(), uptime()
    cpu_before = cpu_seconds()
    backend = LocalBackend(b) if jobs == 1 else ProcessBackend(b, jobs)
    start = time.perf_counter()
    done: list[float] = []  # when each level completed, from the start

    def progress(depth: int, r: object) -> None:
        done.append(round(time.perf_counter() - start, 2))
        print(f"  depth {depth} complete at {done[-1]} s (load {loadavg()})", flush=True)

    with time_limit(budget):
        r = explore(b, backend, progress, first=first)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before  # the workers are reaped by now
    found = {}
    for inv, f in sorted(r.found.items()):
        entry: dict[str, object] = {"steps": len(f.path), "count": f.count, "detail": f.detail}
        if counterexamples is not None:
            # (one folder per invariant: the scripts' modules are lp1, lp2, ...)
            where = counterexamples / b.profile / (f"every-{inv}" if b.every else inv)
            if counterexamples.name == "loads-and-ticks":
                where = counterexamples
            script, check = write_counterexample(b, f, where)
            entry["script"] = str(script.relative_to(ROOT))
            entry["reproduced"] = check is not None
        found[inv] = entry
    complete = len(r.levels) - 1
    record = {
        "name": name,
        "profile": b.profile,
        "bounds": {k: v for k, v in dataclasses.asdict(b).items() if k != "profile"},
        "command": "klpsim explore "
        + " ".join(b.argv())
        + (f" --jobs {jobs}" if jobs > 1 else "")
        + (f" --time-limit {budget:g}" if budget else "")
        + (" --first" if first else ""),
        "jobs": jobs,
        "budget": budget,
        "depth_complete": complete,
        "bound_complete": not r.timed_out and not r.stopped,
        "exhausted": r.exhausted,
        "states": r.states,
        "naive_states": r.naive_states,
        "transitions": r.transitions,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "replays": sum(lv.replays for lv in r.levels),
        "undone": sum(lv.undone for lv in r.levels),
        "states_per_second": round(r.states / seconds, 1),
        "per_level": [
            {
                "new": lv.new,
                "transitions": lv.transitions,
                "done_at": at,
                "cpu": round(lv.cpu, 2),
                "cpu_max": round(lv.cpu_max, 2),
            }
            for lv, at in zip(r.levels, done, strict=False)
        ],
        # the workers' CPU seconds on the complete levels, and the longest
        # worker's per level summed: the time the levels take when each
        # worker has a CPU to itself
        "worker_cpu": round(sum(lv.cpu for lv in r.levels), 2),
        "critical_cpu": round(sum(lv.cpu_max for lv in r.levels), 2),
        "found": found,
        "load": [before, loadavg()],
        "uptime": [up_before, uptime()],
    }
    print(
        f"{name}: {b.profile} {b.label()}, jobs {jobs}: depth {complete} complete,"
        f" {r.states} states, {r.transitions} transitions, {seconds:.1f} s ({cpu:.1f} s CPU),"
        f" broken: {', '.join(found) or 'none'} (load {before} -> {record['load'][1]})",
        flush=True,
    )
    return record


def targets(write: bool) -> list[dict[str, object]]:
    ce = COUNTEREXAMPLES if write else None
    rp = Bounds("replaceable", patches=3, funcs=2, sets=1, states=0, tasks=0, depth=6,
                module_funcs=0)  # fmt: skip
    out = [
        run("replaceable-first", rp, jobs=2, first=True, counterexamples=ce),
        run(
            "replaceable-petr",
            dataclasses.replace(rp, ops=("load", "tick")),
            jobs=2,
            first=True,
            counterexamples=ce and ce / "replaceable" / "loads-and-ticks",
        ),
    ]
    for p in ("replace-set", "7.1"):  # under 60 s each on 2 processes
        out.append(run(f"{p}-target", Bounds(p, **TARGET), jobs=2, counterexamples=ce))
    return out


def largest(
    profiles: list[str], budget: float, every: bool, write: bool
) -> list[dict[str, object]]:
    ce = COUNTEREXAMPLES if write else None
    out = []
    for p in profiles:
        b = Bounds(p, **LARGEST, every=every)
        name = f"{p}-every-largest" if every else f"{p}-largest"
        out.append(run(name, b, jobs=2, budget=budget, counterexamples=ce))
        if write:
            record(out[-1:])  # a long series: keep what is done
    return out


def speedup(repeat: int) -> list[dict[str, object]]:
    out = []
    for i in range(repeat):
        one = run(f"speedup-jobs1-{i}", SPEEDUP, jobs=1)
        two = run(f"speedup-jobs2-{i}", SPEEDUP, jobs=2)
        assert (one["states"], one["transitions"]) == (two["states"], two["transitions"])
        print(f"speedup: {one['seconds'] / two['seconds']:.2f}x", flush=True)  # type: ignore[operator]
        # the same with every worker on a CPU of its own: the longest
        # worker's CPU time per level (the load of others taken out)
        cpu = one["critical_cpu"] / two["critical_cpu"]  # type: ignore[operator]
        print(f"speedup in CPU time (longest worker per level): {cpu:.2f}x", flush=True)
        out += [one, two]
    return out


def record(runs: list[dict[str, object]]) -> None:
    """Merge *runs* into explore.json (by name)."""
    data = json.loads(DATA.read_text()) if DATA.exists() else {"runs": []}
    by_name = {r["name"]: r for r in data["runs"]}
    for r in runs:
        by_name[r["name"]] = r
    data["runs"] = sorted(by_name.values(), key=lambda r: str(r["name"]))
    data["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "recorded": time.strftime("%Y-%m-%d"),
    }
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", choices=["targets", "largest", "speedup"])
    p.add_argument("--profile", action="append", help="largest: only these (repeatable)")
    p.add_argument("--quick", action="store_true", help="a tiny bound, for CI")
    p.add_argument("--budget", type=float, default=600)
    p.add_argument("--family", choices=("chain", "every"), default="chain", help="largest")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--write", action="store_true", help="record in explore.json")
    args = p.parse_args()
    if args.quick:
        one = run("quick-1", QUICK)
        two = run("quick-2", QUICK, jobs=2)
        assert (one["states"], one["transitions"]) == (two["states"], two["transitions"])
        return
    if args.what == "targets":
        runs = targets(args.write)
    elif args.what == "largest":
        profiles = args.profile or list(PROFILES)
        runs = largest(profiles, args.budget, args.family == "every", args.write)
    elif args.what == "speedup":
        runs = speedup(args.repeat)
    else:
        p.error("say what: targets, largest or speedup (or --quick)")
    if args.write:
        record(runs)


if __name__ == "__main__":
    main()
