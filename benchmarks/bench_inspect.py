"""``klpsim inspect`` speed on the real .ko fixtures (needs the real tier's packages).

    python benchmarks/bench_inspect.py [--kernel 6.1|6.12]

Reports, per variant, the median and worst time of reading one module in
process (read_ko), and the wall time of ``klpsim inspect FILE`` as a fresh
process (interpreter start-up and the pyelftools import included).
"""

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.artifacts.ko import KoError, read_ko  # noqa: E402
from klpsim.real.fixtures import build_fixtures  # noqa: E402

# The tests' set (tests/real/conftest.py), so that both use one cached build.
TOMLS = [
    ROOT / "tests/real/defs/klpsim_lp_a.toml",
    ROOT / "tests/real/defs/klpsim_lp_b.toml",
    ROOT / "tests/real/defs/klpsim_mod_a.toml",
    ROOT / "tests/real/inspect_defs/klpsim_ins_multi.toml",
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kernel", default="6.1", choices=["6.1", "6.12"])
    args = p.parse_args()
    fixtures = build_fixtures(args.kernel, TOMLS, log=lambda m: print(m, file=sys.stderr))
    for variant in ("debug", "strip-debug", "strip-unneeded"):
        times = []
        for f in fixtures:
            ko = f.kos[variant]
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                with contextlib.suppress(KoError):
                    read_ko(ko)
                best = min(best, time.perf_counter() - t)
            times.append((best, ko.name, ko.stat().st_size))
        times.sort()
        med = statistics.median(t for t, _, _ in times)
        worst = times[-1]
        print(
            f"read_ko {variant:15} {len(times)} modules: median {med * 1000:.1f} ms, "
            f"worst {worst[0] * 1000:.1f} ms ({worst[1]}, {worst[2] // 1024} KiB)"
        )
    ko = next(f for f in fixtures if f.name == "livepatch-callbacks-demo").kos["debug"]
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "klpsim", "inspect", str(ko)],
            check=True,
            capture_output=True,
            env={"PYTHONPATH": str(ROOT / "src")},
        )
        walls.append(time.perf_counter() - t)
    print(
        f"klpsim inspect {ko.name} ({ko.stat().st_size // 1024} KiB, DWARF), fresh process: "
        f"median {statistics.median(walls) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
