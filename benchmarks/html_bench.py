"""``klpsim run --html``: how long the page takes, and a page at scale.

    python benchmarks/html_bench.py [--out DIR]

Reports:
* the 32 kernel selftests, each run with ``--html`` in one process (target
  under 2 s in all, the same order as running them without);
* a scale scenario, 20 patches (4 replace sets x 5 cumulative releases) over
  50 functions with 100 tasks, three of which stall a transition: the run,
  the page, its size. ``scale_session()`` builds it (tests/browser uses it).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.cli import main as klpsim_main  # noqa: E402
from klpsim.session import Session  # noqa: E402
from klpsim.tools.html import render_html  # noqa: E402

SELFTESTS = ROOT / "tests" / "selftests"
SETS, RELEASES, FUNCS, TASKS = 4, 5, 50, 100
STALLERS = 3


def _definition(k: int, release: int) -> str:
    """Set k's release: cumulative, it patches a growing share of the set's functions."""
    mine = [i for i in range(FUNCS) if i % SETS == k]
    take = mine[: max(1, len(mine) * release // RELEASES)]
    funcs = ", ".join(f'{{ old_name = "klpsim_func_{i}" }}' for i in take)
    return (
        f'livepatch = true\nreplace_set = {k}\n[[objects]]\nname = "vmlinux"\nfuncs = [{funcs}]\n'
    )


def scale_script() -> tuple[str, dict[str, str]]:
    """(script, module definitions) of the scale scenario."""
    defs = {f"lp_s{k}_r{r}": _definition(k, r) for k in range(SETS) for r in range(1, RELEASES + 1)}
    lines = ["start_test 'scale: 20 patches, 50 functions, 100 tasks'"]
    lines += [f"spawn_task worker{i}" for i in range(TASKS)]
    for r in range(1, RELEASES + 1):
        for k in range(SETS):
            name = f"lp_s{k}_r{r}"
            if r == 3 and k < STALLERS:
                # a task sleeps in the set's first function: release 3 waits for it
                pid = 1001 + k * 7
                lines += [
                    f"sleep_task {pid} klpsim_func_{k}",
                    f"load_lp_nowait {name}",
                    "sleep 4",
                    f"wake_task {pid}",
                    f"loop_until grep -q '^0$' /sys/kernel/livepatch/{name}/transition",
                ]
            else:
                lines.append(f"load_lp {name}")
    return "\n".join(lines) + "\n", defs


def scale_session() -> Session:
    """The scale scenario, run."""
    script, defs = scale_script()
    s = Session("replace-set", definitions=defs, extra_funcs=FUNCS, path="scale.sh")
    status = s.run(script)
    if status:
        raise SystemExit(f"scale scenario failed: {s.err.getvalue()}")
    return s


def selftests_html(out: Path) -> float:
    """Seconds for the 32 selftests, each with --html, in one process."""
    scripts = sorted(SELFTESTS.glob("test-*.sh"))
    assert len(scripts) == 32
    start = time.perf_counter()
    for script in scripts:
        page = out / f"{script.stem}.html"
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            status = klpsim_main(["run", "--kernel", "7.1", "--html", str(page), str(script)])
        if status != 0 or not page.is_file():
            raise SystemExit(f"{script.name}: status {status}")
    return time.perf_counter() - start


def selftests_plain() -> float:
    scripts = sorted(SELFTESTS.glob("test-*.sh"))
    start = time.perf_counter()
    for script in scripts:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            klpsim_main(["run", "--kernel", "7.1", str(script)])
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, help="keep the pages here (default: a temporary folder)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t_html = min(selftests_html(out) for _ in range(args.repeat))
        t_plain = min(selftests_plain() for _ in range(args.repeat))
        start = time.perf_counter()
        s = scale_session()
        t_run = time.perf_counter() - start
        start = time.perf_counter()
        page = render_html(s)
        t_page = time.perf_counter() - start
        (out / "scale.html").write_text(page)
    ok = "  ok" if t_html < 2.0 else "  OVER TARGET"
    print(f"{'32 selftests with --html, one process':52} {t_html:8.3f} s (target < 2.0 s){ok}")
    print(f"{'32 selftests, transcript only, one process':52} {t_plain:8.3f} s")
    print(f"{'scale scenario 20 x 50 x 100: run':52} {t_run:8.3f} s")
    print(f"{'scale scenario: render the page':52} {t_page:8.3f} s ({len(page) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
