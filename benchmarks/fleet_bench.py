"""``klpsim plan --fleet`` over 1,000 synthetic hosts made by the model, on
1 and 2 local workers.

    python benchmarks/fleet_bench.py [--hosts N] [--seed S] [--ray]

Each host is a model state: a Session booted on replace-set, up to 3
patches loaded from the explorer's seeded family (tools/fleet.py
``synthetic_host``), worker tasks (one a kthread) asleep in the family's
functions, some before the loads and some after; then written as a snapshot
archive (artifacts/snapshot_write.py). The fleet plans one new cumulative
patch of set 0 (``SYNTHETIC_NEW``). Timed: making the fleet, then the plan
with ``--jobs 1`` (in this process) and ``--jobs 2`` (two forked workers of
tools/workers.py), alternately, best of 2 each; the ratio is the speed-up.
The reports must be identical (and with ``--ray``, the ``--ray local`` one
too). The machine's 2 cores are shared with other work: ``uptime``'s load is
printed beside each figure, and each worker's CPU seconds too: the busiest
worker's CPU time is the run's critical path, what 2 free cores would take.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.tools.fleet import (  # noqa: E402
    OUTCOMES,
    SYNTHETIC_NEW,
    fleet_hosts,
    fleet_json,
    plan_fleet,
    synthetic_fleet,
)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray", action="store_true", help="also --ray local (the ray extra)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="klpsim-fleet-") as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        synthetic_fleet(d / "hosts", args.hosts, args.seed)
        made = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (d / "hosts").iterdir())
        print(
            f"made {args.hosts} snapshots in {made:.1f} s ({size / args.hosts / 1024:.1f} KiB each)"
        )
        new = d / "lp_new.toml"
        new.write_text(SYNTHETIC_NEW)
        paths = fleet_hosts(str(d / "hosts"))
        files = [str(new)]
        best: dict[int, float] = {}
        reports = {}
        crit: dict[int, float] = {}
        for _ in range(2):
            for jobs in (1, 2):
                before = load()
                t = time.perf_counter()
                cpu: list[float] = []
                hosts = plan_fleet(paths, files, jobs=jobs, cpu=cpu)
                took = time.perf_counter() - t
                per = ", ".join(f"{c:.2f}" for c in cpu)
                print(
                    f"--jobs {jobs}: {took:.2f} s ({len(paths) / took:.0f} hosts/s); CPU s per worker: {per}"
                )
                crit[jobs] = min(crit.get(jobs, max(cpu)), max(cpu))
                print(f"  load before: {before}\n  load after:  {load()}")
                best[jobs] = min(best.get(jobs, took), took)
                reports[jobs] = fleet_json(str(d / "hosts"), files, hosts)
        same = reports[1] == reports[2]
        if args.ray:
            t = time.perf_counter()
            hosts = plan_fleet(paths, files, jobs=2, ray="local")
            print(f"--ray local --jobs 2: {time.perf_counter() - t:.2f} s (Ray start included)")
            same = same and fleet_json(str(d / "hosts"), files, hosts) == reports[1]
        c = reports[1]["counts"]
        print("outcomes: " + ", ".join(f"{c[o]} {o}" for o in OUTCOMES))
        print(f"groups: {len(reports[1]['groups'])}")
        ratio = best[1] / best[2]
        print(f"best: --jobs 1 {best[1]:.2f} s, --jobs 2 {best[2]:.2f} s: speed-up {ratio:.2f}x")
        cratio = crit[1] / crit[2]
        print(
            f"CPU critical path (the busiest worker's CPU s): --jobs 1 {crit[1]:.2f}, "
            f"--jobs 2 {crit[2]:.2f}: {cratio:.2f}x (what 2 free cores would give)"
        )
        print(f"reports identical ({'1, 2, ray local' if args.ray else '1, 2'}): {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
