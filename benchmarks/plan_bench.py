"""``klpsim plan`` at a real host's size, and its growth in tasks.

    python benchmarks/plan_bench.py

A fake host tree (the Python collector's archive of it) of 300,000 kallsyms
lines, 2,000 tasks (1,000 processes of two threads, four-frame stacks; one
thread in fifty asleep in a function the new patch patches) and 10 livepatches of 20
functions each, stacked (no replace). The plan loads one new cumulative
patch (replace=1) of 30 functions: it replaces all ten, so 200 functions are
re-patched or reverted, and the sleeping threads block its transition until
the signals. Timed, best of 3, in process: read_snapshot() plus plan() (boot
into the snapshot, load, 60 simulated seconds of transition), and the
rendering.

Targets (issue 12): under 1 s for the whole at 2,000 tasks; no worse than
linear in tasks: the same host with 20,000 tasks (10x) must take under 10x
the time of the 2,000-task one.
"""

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.artifacts.snapshot import read_snapshot  # noqa: E402
from klpsim.real.collector import collect  # noqa: E402
from klpsim.tools.plan import plan, render  # noqa: E402

PATCHES, FUNCS = 10, 20


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_host(root: Path, procs: int, symbols: int = 300_000) -> None:
    write(root, "proc/sys/kernel/osrelease", "6.12.0-bench\n")
    write(root, "proc/sys/kernel/ftrace_enabled", "1\n")
    write(root, "proc/sys/kernel/tainted", "45056\n")
    write(root, "proc/mounts", "debugfs /sys/kernel/debug debugfs rw 0 0\n")
    mods = "".join(f"lp_{i} 16384 1 - Live 0x0 (OEK)\n" for i in reversed(range(PATCHES)))
    write(root, "proc/modules", mods)
    for i in range(PATCHES):
        base = f"sys/kernel/livepatch/lp_{i}"
        for attr, value in (("enabled", 1), ("transition", 0), ("replace", 0)):
            write(root, f"{base}/{attr}", f"{value}\n")
        write(root, f"{base}/vmlinux/patched", "1\n")
        for j in range(FUNCS):
            (root / f"{base}/vmlinux/func_{i}_{j},1").mkdir(parents=True)
        write(root, f"sys/module/lp_{i}/refcnt", "1\n")
        (root / f"sys/module/lp_{i}/holders").mkdir(parents=True)
    plain = "[<0>] do_select+0x5c0/0x8a0\n[<0>] core_sys_select+0x1a1/0x3c0\n"
    plain += "[<0>] do_syscall_64+0x55/0xb0\n[<0>] entry_SYSCALL_64+0x6c/0x90\n"
    for pid in range(1, procs + 1):
        for tid in (pid, pid + 1_000_000):
            base = f"proc/{pid}/task/{tid}"
            stack = plain
            if tid % 50 == 0:  # asleep in a function the new patch patches
                stack = "[<0>] do_select+0x5c0/0x8a0\n[<0>] func_0_25+0x10/0x40\n" + plain
            write(root, f"{base}/comm", f"task{tid}\n")
            write(root, f"{base}/stat", f"{tid} (task{tid}) S 1 1 1 0 -1 4194560 0 0 0\n")
            write(root, f"{base}/stack", stack)
            write(root, f"{base}/patch_state", "-1\n")
    names = ["do_select", "core_sys_select", "do_syscall_64", "entry_SYSCALL_64"]
    names += [f"func_{i}_{j}" for i in range(PATCHES) for j in range(FUNCS + 10)]
    lines = [f"{0xFFFFFFFF81000000 + 16 * k:016x} T {n}" for k, n in enumerate(names)]
    base = len(lines)
    lines += [
        f"{0xFFFFFFFF82000000 + 16 * k:016x} T sym_{k}" for k in range(symbols - 50_000 - base)
    ]
    lines += [
        f"{0xFFFFFFFFC0000000 + 16 * k:016x} t msym_{k}\t[mod{k % 50}]" for k in range(50_000)
    ]
    write(root, "proc/kallsyms", "\n".join(lines) + "\n")


def new_patch(folder: Path) -> str:
    funcs = [f"func_{i}_{j}" for i in range(3) for j in range(FUNCS, FUNCS + 10)]
    body = "".join(f'  {{ old_name = "{f}" }},\n' for f in funcs)
    path = folder / "lp_cumulative.toml"
    path.write_text(
        f'livepatch = true\nreplace = true\n[[objects]]\nname = "vmlinux"\nfuncs = [\n{body}]\n'
    )
    return str(path)


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(tmp: Path, procs: int, new: str) -> tuple[float, float, str]:
    host = tmp / f"host{procs}"
    build_host(host, procs)
    archive = tmp / f"snap{procs}.tar.gz"
    collect(str(archive), str(host))
    shutil.rmtree(host)
    out: list = []

    def load_and_plan() -> None:
        out[:] = [plan(read_snapshot(archive), [new])]

    t = best_of(3, load_and_plan)
    p = out[0]
    t_render = best_of(3, lambda: render(p))
    load = p.loads[0]
    tr = load.transition
    summary = (
        f"{p.host.tasks} tasks, {len(p.host_patches)} patches; load accepted={load.load.accepted}, "
        f"replaces {len(load.load.replaces)}, {len(load.load.changes)} function changes, "
        f"{len(tr['blocking']) if tr else 0} blocking, outcome {tr['outcome'] if tr else None}"
    )
    return t, t_render, summary


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="klpsim-plan-bench-"))
    try:
        new = new_patch(tmp)
        t1, r1, s1 = measure(tmp, 1_000, new)
        print(f"2,000 tasks:  read_snapshot + plan {t1:5.2f} s, render {r1:5.3f} s  ({s1})")
        t10, r10, s10 = measure(tmp, 10_000, new)
        print(f"20,000 tasks: read_snapshot + plan {t10:5.2f} s, render {r10:5.3f} s  ({s10})")
        ratio = t10 / t1
        ok1, ok10 = t1 + r1 < 1.0, ratio < 10
        print(f"target: 2,000 tasks under 1 s: {'met' if ok1 else 'MISSED'} ({t1 + r1:.2f} s)")
        print(f"target: 10x the tasks, under 10x the time: {'met' if ok10 else 'MISSED'} "
              f"({ratio:.1f}x)")  # fmt: skip
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        print(f"CPU time of the whole run: {cpu.ru_utime + cpu.ru_stime:.1f} s")
        return 0 if ok1 and ok10 else 1
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
