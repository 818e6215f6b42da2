"""klpsim's speed targets, measured.

    python benchmarks/bench.py            # everything
    python benchmarks/bench.py --quick    # smaller repeat counts (CI smoke run)

Reports:
* the 11 foundation selftest scenarios (test-livepatch, test-sysfs,
  test-syscall) run in one process, and all 32;
* enable + complete of one patch with 1,000 functions on a kernel with
  10,000 tasks of stack depth 8, then 20,000 tasks, and their ratio;
* the start-up time of ``klpsim run`` on a small scenario (a fresh process);
* the 32 selftests each with ``--html`` (benchmarks/html_bench.py has more);
* parsing a 1 MB script (the selftests, repeated) and one 80,000-character
  word of escapes, quotes and braces (the parser must stay linear).
"""

import argparse
import io
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.cli import main as klpsim_main  # noqa: E402
from klpsim.kernel.module import FunctionSpec, ModuleSpec  # noqa: E402
from klpsim.livepatch.structs import KlpFunc, KlpObject  # noqa: E402
from klpsim.modules.base import LivepatchCode  # noqa: E402
from klpsim.scenario.parser import parse_script  # noqa: E402
from klpsim.session import Session  # noqa: E402

SELFTESTS = ROOT / "tests" / "selftests"
FOUNDATION = ("test-livepatch-", "test-sysfs-", "test-syscall-")


def run_scenarios(scripts) -> float:
    start = time.perf_counter()
    for script in scripts:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = klpsim_main(["run", "--kernel", "7.1", "--dmesg", str(script)])
        if status != 0:
            raise SystemExit(f"{script.name} failed: {err.getvalue()}")
    return time.perf_counter() - start


def scale(tasks: int, funcs: int = 1000, depth: int = 8) -> float:
    """Seconds of wall time for insmod → transition complete."""
    system = Session("7.1", extra_funcs=funcs).system
    kernel = system.kernel
    frames = [
        "ret_from_fork",
        "kthread",
        "worker_thread",
        "process_one_work",
        "schedule",
        "schedule_timeout",
        "msleep",
        "do_idle",
        "do_syscall_64",
        "ep_poll",
        "do_wait",
    ]
    for i in range(tasks):
        stack = [frames[(i + k) % len(frames)] for k in range(depth)]
        kernel.spawn(f"task{i}", kthread=i % 3 == 0, stack=stack)

    class BigPatch(LivepatchCode):
        def objects(self):
            return [
                KlpObject(
                    None,
                    [KlpFunc(f"klpsim_func_{i}", self.sym(f"lp_func_{i}")) for i in range(funcs)],
                )
            ]

    spec = ModuleSpec(
        "lp_big",
        BigPatch,
        livepatch=True,
        functions=tuple(FunctionSpec(f"lp_func_{i}", lambda ctx, *a: 1) for i in range(funcs)),
    )
    start = time.perf_counter()
    ret = kernel.modules.load_module(spec, [])
    assert ret == 0, ret
    while system.klp.transition_patch is not None:
        kernel.clock.advance(100_000_000)
    elapsed = time.perf_counter() - start
    assert len(system.klp.ops) == funcs
    return elapsed


def startup() -> float:
    script = SELFTESTS / "test-livepatch-01-basic-function-patching.sh"
    cmd = [sys.executable, "-m", "klpsim", "run", "--kernel", "7.1", "--dmesg", str(script)]
    env = {"PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def import_time() -> str:
    cmd = [sys.executable, "-X", "importtime", "-c", "import klpsim.cli"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")})
    total = sum(int(line.split("|")[1]) for line in r.stderr.splitlines()[1:] if "|" in line)
    return f"{total / 1000:.1f} ms"


def parse_time(text: str) -> float:
    start = time.perf_counter()
    parse_script(text)
    return time.perf_counter() - start


def big_script(scripts) -> str:
    """About 1 MB of real scenario lines."""
    text = "".join(s.read_text() for s in scripts)
    return text * (1_000_000 // len(text) + 1)


def long_word() -> str:
    """One 80,000-character word that is neither plain nor simple."""
    return "echo " + "a\\ b'c'\"d\"{x}yzw" * 5000 + "\n"


def best(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    repeat = 1 if args.quick else 3
    scripts = sorted(SELFTESTS.glob("test-*.sh"))
    foundation = [s for s in scripts if s.name.startswith(FOUNDATION)]
    assert len(foundation) == 11 and len(scripts) == 32
    rows = []
    rows.append(
        (
            "11 foundation scenarios, one process",
            best(lambda: run_scenarios(foundation), repeat),
            0.5,
        )
    )
    rows.append(
        (
            "all 32 selftest scenarios, one process",
            best(lambda: run_scenarios(scripts), repeat),
            1.5,
        )
    )
    t10 = best(lambda: scale(10_000), repeat)
    t20 = best(lambda: scale(20_000), repeat)
    rows.append(("1,000-func patch, 10,000 tasks x depth 8", t10, 1.0))
    rows.append(("1,000-func patch, 20,000 tasks x depth 8", t20, None))
    rows.append(
        (
            "klpsim run start-up + 1 scenario (fresh process)",
            statistics.median(startup() for _ in range(3 if not args.quick else 1)),
            None,
        )
    )
    mb = big_script(scripts)
    rows.append(
        (f"parse a {len(mb) / 1e6:.1f} MB script", best(lambda: parse_time(mb), repeat), 0.5)
    )
    word = long_word()
    rows.append(("parse one 80,000-character word", best(lambda: parse_time(word), repeat), 0.2))
    import tempfile

    from html_bench import selftests_html

    with tempfile.TemporaryDirectory() as tmp:
        rows.append(
            (
                "all 32 selftests with --html, one process",
                best(lambda: selftests_html(Path(tmp)), repeat),
                2.0,
            )
        )
    for name, secs, target in rows:
        verdict = "" if target is None else ("  ok" if secs < target else "  OVER TARGET")
        limit = "" if target is None else f" (target < {target} s)"
        print(f"{name:52} {secs:8.3f} s{limit}{verdict}")
    ratio = t20 / t10
    print(
        f"{'20,000/10,000 tasks ratio':52} {ratio:8.2f}   (target < 2.3){'  ok' if ratio < 2.3 else '  OVER TARGET'}"
    )
    print(f"{'import klpsim.cli (python -X importtime)':52} {import_time():>10}")


if __name__ == "__main__":
    main()
