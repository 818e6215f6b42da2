"""Host snapshots at a real host's size: collecting and loading.

    python benchmarks/snapshot_bench.py

A fake host tree of 300,000 kallsyms lines, 2,000 tasks (1,000 processes of
two threads, three-frame stacks) and 10 livepatches of 20 functions each:

* the Python collector (in-process), the sh collector under dash and busybox
  ash (each run as its own process);
* read_snapshot() on the archive (issue 12's target: load and plan in
  under 1 s), then the first kallsyms lookup (the index is built lazily).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from klpsim.artifacts.snapshot import read_snapshot  # noqa: E402
from klpsim.real.collector import collect  # noqa: E402
from klpsim.tools.snapshot import script_text  # noqa: E402


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_host(root: Path, symbols: int = 300_000, procs: int = 1000, patches: int = 10) -> None:
    write(root, "proc/sys/kernel/osrelease", "6.12.0-bench\n")
    write(root, "proc/sys/kernel/ftrace_enabled", "1\n")
    write(root, "proc/sys/kernel/tainted", "45056\n")
    write(root, "proc/mounts", "debugfs /sys/kernel/debug debugfs rw 0 0\n")
    mods = "".join(f"lp_{i} 16384 1 - Live 0x0 (OEK)\n" for i in reversed(range(patches)))
    write(root, "proc/modules", mods)
    for i in range(patches):
        base = f"sys/kernel/livepatch/lp_{i}"
        for attr, value in (("enabled", 1), ("transition", 0), ("replace", 0)):
            write(root, f"{base}/{attr}", f"{value}\n")
        write(root, f"{base}/vmlinux/patched", "1\n")
        for j in range(20):
            (root / f"{base}/vmlinux/func_{i}_{j},1").mkdir(parents=True)
        write(root, f"sys/module/lp_{i}/refcnt", "1\n")
        (root / f"sys/module/lp_{i}/holders").mkdir(parents=True)
    stack = "[<0>] do_select+0x5c0/0x8a0\n[<0>] core_sys_select+0x1a1/0x3c0\n"
    stack += "[<0>] do_syscall_64+0x55/0xb0\n"
    for pid in range(1, procs + 1):
        for tid in (pid, pid + 100_000):
            base = f"proc/{pid}/task/{tid}"
            write(root, f"{base}/comm", f"task{tid}\n")
            write(root, f"{base}/stat", f"{tid} (task{tid}) S 1 1 1 0 -1 4194560 0 0 0\n")
            write(root, f"{base}/stack", stack)
            write(root, f"{base}/patch_state", "-1\n")
    lines = [f"{0xFFFFFFFF81000000 + 16 * k:016x} T sym_{k}" for k in range(symbols - 50_000)]
    lines += [
        f"{0xFFFFFFFFC0000000 + 16 * k:016x} t msym_{k}\t[mod{k % 50}]" for k in range(50_000)
    ]
    write(root, "proc/kallsyms", "\n".join(lines) + "\n")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="klpsim-snapshot-bench-"))
    try:
        host = tmp / "host"
        t = timed(lambda: build_host(host))
        print(f"fake host: 300,000 symbols, 2,000 tasks, 10 patches (built in {t:.1f} s)")
        out = tmp / "py.tar.gz"
        t = timed(lambda: collect(str(out), str(host)))
        print(f"python collector:     {t:6.2f} s  ({out.stat().st_size / 1e6:.1f} MB)")
        script = tmp / "s.sh"
        script.write_text(script_text())
        env = dict(os.environ, KLPSIM_ROOT=str(host))
        for name, shell in (("dash", ["dash"]), ("busybox ash", ["busybox", "ash"])):
            if shutil.which(shell[0]) is None:
                print(f"sh collector ({name}): {shell[0]} not installed")
                continue
            cmd = [*shell, str(script), "-o", str(tmp / "sh.tar.gz"), "--force"]
            t = timed(lambda cmd=cmd: subprocess.run(cmd, env=env, check=True, capture_output=True))
            print(f"sh collector ({name}): {t:6.2f} s")
        snaps = []
        t = timed(lambda: snaps.append(read_snapshot(out)))
        snap = snaps[0]
        print(
            f"read_snapshot:        {t:6.2f} s  ({len(snap.kallsyms)} symbols, "
            f"{len(snap.tasks)} tasks, {len(snap.livepatches)} patches)"
        )
        t = timed(lambda: snap.kallsyms.lookup("sym_123"))
        print(f"first kallsyms lookup:{t:6.2f} s  (builds the name index)")
        t = timed(lambda: [snap.kallsyms.lookup(f"sym_{k}") for k in range(1000)])
        print(f"1,000 more lookups:   {t:6.3f} s")
    finally:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
