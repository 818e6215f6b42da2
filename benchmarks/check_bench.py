"""``klpsim check`` at a distribution's size.

    python benchmarks/check_bench.py

100 livepatch definitions of 20 functions each (2,000 functions), each in
its own replace set, against a 300,000-line kallsyms that has the
functions; plus the same set where every tenth patch shares a function
with the patch before it (10 refusals). Timed, best of 3: check() in
process (reading the files, booting, loading all 100 in order) and
``klpsim check`` as a fresh process.

Target (issue 11): 100 modules with 2,000 functions in under 1 s.
"""

import functools
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from kallsyms_bench import table  # noqa: E402

from klpsim.artifacts.kallsyms import read_symbol_table  # noqa: E402
from klpsim.livepatch.profiles import get_profile  # noqa: E402
from klpsim.tools.check import check, read_inputs  # noqa: E402


def write_patches(folder: Path, clash: bool) -> list[str]:
    files = []
    for i in range(100):
        funcs = [f"fn_{i * 20 + k}" for k in range(20)]
        if clash and i % 10 == 9:
            funcs[0] = f"fn_{(i - 1) * 20}"
        body = "".join(f'  {{ old_name = "{f}" }},\n' for f in funcs)
        text = f'livepatch = true\nreplace_set = {i + 1}\n[[objects]]\nname = "vmlinux"\nfuncs = [\n{body}]\n'
        path = folder / f"lp_{i:03d}.toml"
        path.write_text(text)
        files.append(str(path))
    return files


def best(fn, n: int = 3) -> float:
    """Best CPU time of *n* runs (the machine may be shared: wall time varies)."""
    times = []
    for _ in range(n):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def in_process(files: list[str], ks: Path, refusals: int) -> None:
    profile = get_profile("replace-set")
    patches, targets = read_inputs(files, profile)
    report = check(profile, patches, targets, read_symbol_table(ks))
    refused = sum(not load.accepted for load in report.loads)
    assert refused == refusals, refused


def process(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh process, best of 3 each."""
    walls, cpus = [], []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ks = Path(tmp) / "kallsyms"
        ks.write_text(table())
        for clash in (False, True):
            folder = Path(tmp) / f"set-{clash}"
            folder.mkdir()
            files = write_patches(folder, clash)
            t = best(functools.partial(in_process, files, ks, 10 if clash else 0))
            cmd = [sys.executable, "-m", "klpsim", "check", "--kallsyms", str(ks), *files]
            wall, cpu = process(cmd)
            label = "10 clashes" if clash else "disjoint"
            print(f"100 patches, 2000 functions ({label}):")
            print(f"  check() in process          {t * 1000:7.1f} ms")
            print(
                f"  klpsim check (process)      {wall * 1000:7.1f} ms wall, {cpu * 1000:.1f} ms CPU"
            )
            print(
                f"  target under 1 s (CPU; wall on an idle machine): {'met' if cpu < 1 else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
