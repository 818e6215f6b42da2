"""``klpsim plan`` against a real kernel: random host states, real loads.

    python -m klpsim.tools.planvm --kernel 6.12|replace-set --seed S --cases N [--out DIR]

The modules are the fuzz pool's (tools/fuzz.py, built as ``.ko`` files as
tools/checkvm.py builds them), plus the project's own sleeper module
(:data:`SLEEPER_C`): a target whose ``/proc`` show function ``sl1`` sleeps
until a signal, and whose ``sk1`` a kthread sleeps in for good (module
parameter ``kthread=1``); and a few livepatches of those two functions.

Each case, in one guest boot for all:

1. builds a host state: the target modules, the sleeper, 0 to 3 livepatches
   loaded in order (each waited for, briefly: a stalled one stays in
   transition), then, at random, a ``cat`` asleep in ``sl1`` (the original,
   unless a patch already replaced it) and a kprobe through kprobe_events on
   a random function;
2. runs the POSIX collector (``klpsim snapshot --print-script``) in the guest
   and copies the archive out;
3. runs ``plan`` on the host with that snapshot and the new modules' ``.ko``
   files (the profile chosen from the snapshot, as a user would run it);
4. loads the new modules in the guest in order, each followed by up to 30 s
   for its transition (signals come at 15 s), and records what the kernel
   did;
5. compares, per load: accepted or refused; the kernel log lines of the
   load (as check_result filters them); the /sys/kernel/livepatch tree;
   which functions run a patch and which the original; whether the
   transition completed; whether signals were sent.

Every difference is printed; the exit status is 1 if any case disagrees.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from klpsim.artifacts.snapshot import SnapshotError, Unknown, read_snapshot
from klpsim.kernel.vmlinux import PROC_SHOW
from klpsim.real.vm import KERNELS
from klpsim.scenario.helpers import filter_check_result
from klpsim.tools.checkvm import LIVE, _observed_functions, compare_in_guest
from klpsim.tools.fuzz import PREFIX, module_pool
from klpsim.tools.plan import Plan, PlanError, plan
from klpsim.tools.snapshot import script_text

__all__ = [
    "SLEEPER",
    "SLEEPER_C",
    "PlanCase",
    "pool_with_sleeper",
    "make_cases",
    "setup_script",
    "load_script",
    "parse_loads",
    "predicted",
    "diff_case",
    "main",
]

SLEEPER = f"{PREFIX}_sleeper"
#: The sleeper module: the project's own C (the guest side of a task asleep
#: in a patched function).
SLEEPER_C = f"""\
// SPDX-License-Identifier: GPL-2.0
/* klpsim: a target whose functions tasks sleep in (tools/planvm.py). */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/wait.h>

static DECLARE_WAIT_QUEUE_HEAD(klpsim_wq);
static bool kthread;
module_param(kthread, bool, 0444);
static struct task_struct *klpsim_thread;
static struct proc_dir_entry *klpsim_dir;

/* A reader sleeps here until a signal (livepatch's fake one included): the
 * read then restarts, and runs whatever sl1 is by then. */
noinline int sl1(struct seq_file *m, void *v)
{{
	int ret = wait_event_interruptible(klpsim_wq, false);

	if (ret)
		return ret;
	seq_printf(m, "%s\\n", "{SLEEPER}: sl1: original output");
	return 0;
}}
EXPORT_SYMBOL_GPL(sl1);

/* The kthread sleeps here until the module goes: a wake-up (livepatch's
 * signals wake kthreads) only puts it back to sleep, in the same function. */
noinline int sk1(struct seq_file *m, void *v)
{{
	while (!kthread_should_stop())
		wait_event_interruptible(klpsim_wq, kthread_should_stop());
	return 0;
}}
EXPORT_SYMBOL_GPL(sk1);

static int klpsim_sleeper_fn(void *data)
{{
	return sk1(NULL, NULL);
}}

static int __init {SLEEPER}_init(void)
{{
	klpsim_dir = proc_mkdir(KBUILD_MODNAME, NULL);
	if (!klpsim_dir)
		return -ENOMEM;
	if (!proc_create_single("sl1", 0444, klpsim_dir, sl1)) {{
		proc_remove(klpsim_dir);
		return -ENOMEM;
	}}
	if (kthread) {{
		klpsim_thread = kthread_run(klpsim_sleeper_fn, NULL, "klpsim_sleeper");
		if (IS_ERR(klpsim_thread)) {{
			proc_remove(klpsim_dir);
			return PTR_ERR(klpsim_thread);
		}}
	}}
	return 0;
}}

static void __exit {SLEEPER}_exit(void)
{{
	if (klpsim_thread)
		kthread_stop(klpsim_thread);
	proc_remove(klpsim_dir);
}}

module_init({SLEEPER}_init);
module_exit({SLEEPER}_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpsim sleeper target module");
"""

#: Seconds a new load's transition may take in the guest (signals at 15 s).
TRANSITION_WAIT = 30


@dataclass
class PlanCase:
    """One random host state and the modules then loaded on it."""

    name: str
    targets: list[str]
    host: list[str]
    """Livepatches loaded before the snapshot, in order."""
    new: list[str]
    """Livepatches ``plan`` predicts, then loaded for real, in order."""
    reader: bool = False
    """A ``cat`` of /proc/<sleeper>/sl1, started after the host patches."""
    kthread: bool = False
    """The sleeper's kthread, asleep in sk1 from the module's load."""
    kprobe: str | None = None
    """``object:function`` a kprobe_events probe sits on."""
    observed: list[str] = field(default_factory=list)
    """``object:function`` read after each load (what runs: a patch or the original)."""


def pool_with_sleeper(seed: int, kernel: str) -> dict[str, str]:
    """The fuzz pool plus four livepatches of the sleeper's functions."""
    pool = module_pool(seed, kernel)
    rng = random.Random(f"{seed}:sleeper")
    for i in range(1, 5):
        if kernel == "replace-set":
            lines = ["livepatch = true", f"replace_set = {rng.choice((0, 1, 2))}"]
        else:
            lines = ["livepatch = true", f"replace = {str(rng.random() < 0.35).lower()}"]
        funcs = ["sl1"] if i <= 3 else ["sk1"]
        lines.append(f'[[objects]]\nname = "{SLEEPER}"\nfuncs = [')
        lines += [f'  {{ old_name = "{f}" }},' for f in funcs]
        lines.append("]")
        if rng.random() < 0.5:
            lines.append('[[objects]]\nname = "vmlinux"\nfuncs = [')
            lines.append(f'  {{ old_name = "{rng.choice(sorted(PROC_SHOW))}" }},')
            lines.append("]")
        if rng.random() < 0.3:
            lines.append(f"[[states]]\nid = {rng.randint(1, 2)}\nversion = {rng.randint(1, 3)}")
        pool[f"{PREFIX}_lps{i}"] = "\n".join(lines) + "\n"
    return pool


_CLASHES = ({f"{PREFIX}_tgt_a", f"{PREFIX}_tgt_c"},)


def make_cases(pool: dict[str, str], seed: int, count: int) -> list[PlanCase]:
    """*count* random cases; the same seed gives the same cases."""
    lps = sorted(n for n, t in pool.items() if t.startswith("livepatch"))
    targets = sorted(n for n in pool if n not in lps)
    out = []
    for i in range(count):
        rng = random.Random(f"{seed}:case:{i}")
        host = rng.sample(lps, rng.randint(0, 3))
        rest = [n for n in lps if n not in host]
        new = rng.sample(rest, rng.randint(1, 2))
        chosen = host + new
        wanted = [t for t in targets if any(f'name = "{t}"' in pool[p] for p in chosen)]
        for clash in _CLASHES:
            both = sorted(clash & set(wanted))
            if len(both) > 1:
                wanted.remove(rng.choice(both))
        observed = _observed_functions(wanted, pool)
        case = PlanCase(f"case_{seed}_{i}", wanted, host, new, observed=observed)
        case.reader = rng.random() < 0.6
        case.kthread = rng.random() < 0.2
        if rng.random() < 0.6:
            case.kprobe = rng.choice(observed + [f"{SLEEPER}:sl1", f"{SLEEPER}:sk1"])
        out.append(case)
    return out


_HELPERS = r"""
klpsim_settle() {  # $1 tenths of a second at most: no transition, nothing left to free
	local i f v busy
	for ((i = 0; i < $1; i++)); do
		busy=
		for f in /sys/kernel/livepatch/*/transition /sys/kernel/livepatch/*/enabled; do
			[[ -e $f ]] || continue
			read -r v < "$f"
			[[ $f == */transition && $v == 1 ]] && busy=1
			[[ $f == */enabled && $v == 0 ]] && busy=1
		done
		[[ -z $busy ]] && return 0
		sleep 0.1
	done
	return 1
}
klpsim_walk() {  # the livepatch tree: readable files with their value, func dirs
	local p v
	for p in "$1"/*; do
		[[ -e $p ]] || continue
		if [[ -d $p ]]; then
			[[ ${p##*/} == *,* ]] && echo "@sysfs $p/"
			klpsim_walk "$p"
		elif { v=$(< "$p"); } 2>/dev/null; then
			echo "@sysfs $p: $v"
		fi
	done
}
klpsim_run() { local line=; read -r line < "$2"; echo "@run $1 $line"; }
"""


def _kprobe_target(key: str) -> str:
    obj, _, fn = key.partition(":")
    return fn if obj == "vmlinux" else f"{obj}:{fn}"


def setup_script(case: PlanCase) -> str:
    """The host state, then the collector (the guest's archive at /tmp/snap.tar.gz)."""
    lines = [f"# klpsim planvm {case.name}: the host state", _HELPERS.strip(), "last_load=0"]
    lines += [f"insmod /klp/mods/{t}.ko || echo '@target-failed {t}'" for t in case.targets]
    kt = " kthread=1" if case.kthread else ""
    lines.append(f"insmod /klp/mods/{SLEEPER}.ko{kt} || echo '@target-failed {SLEEPER}'")
    for p in case.host:
        lines += [f"insmod /klp/mods/{p}.ko", f'echo "@host {p} $?"', "last_load=$SECONDS"]
        lines.append("klpsim_settle 30")
    if case.reader:
        lines.append(f"cat /proc/{SLEEPER}/sl1 > /dev/null 2>&1 &")
        lines.append('echo "@reader $!"')
    if case.kprobe is not None:
        lines.append(
            f"echo 'p:klpsim/planvm {_kprobe_target(case.kprobe)}' >> "
            "/sys/kernel/tracing/kprobe_events && "
            "echo 1 > /sys/kernel/tracing/events/klpsim/planvm/enable || echo '@kprobe-failed'"
        )
    lines.append("sleep 0.5")  # the reader reaches its sleep
    # A host transition still running: past its first signals before the
    # snapshot, as plan takes one (a snapshot does not say how long it ran).
    lines.append(
        "klpsim_settle 1 || { t=$((SECONDS - last_load)); ((t < 17)) && sleep $((17 - t)); }"
    )
    lines.append("sh /klp/klpsim-snapshot.sh --ko /klp/mods -o /tmp/snap.tar.gz --force")
    return "\n".join(lines) + "\n"


def load_script(case: PlanCase) -> str:
    """Load the new modules for real; print what each load did."""
    files = [(f"vmlinux:{f}", path) for f, path in sorted(PROC_SHOW.items())]
    for k in case.observed[len(files) :]:
        obj, _, f = k.partition(":")
        files.append((k, f"/proc/{obj}/{f}"))
    lines = [f"# klpsim planvm {case.name}: the new loads", _HELPERS.strip()]
    lines.append("echo 'file kernel/livepatch/* +p' > /sys/kernel/debug/dynamic_debug/control")
    lines.append("echo 'func klp_try_switch_task -p' > /sys/kernel/debug/dynamic_debug/control")
    for p in case.new:
        lines += [
            "dmesg -C",
            f"insmod /klp/mods/{p}.ko",
            f'echo "@load {p} $?"',
            f"klpsim_settle {TRANSITION_WAIT * 10} && echo '@settled 1' || echo '@settled 0'",
            "klpsim_walk /sys/kernel/livepatch",
        ]
        lines += [f"klpsim_run {k} {path}" for k, path in files]
        lines.append('dmesg --notime | while IFS= read -r l; do echo "@log $l"; done')
    return "\n".join(lines) + "\n"


def cleanup_script(reader: int | None) -> str:
    """Stop the reader and remove the kprobe: /klp/reset.sh does the rest."""
    kill = f"kill {reader} 2>/dev/null\n" if reader else ""
    return kill + CLEANUP


CLEANUP = """\
if [[ -e /sys/kernel/tracing/events/klpsim/planvm/enable ]]; then
	echo 0 > /sys/kernel/tracing/events/klpsim/planvm/enable
	echo '-:klpsim/planvm' >> /sys/kernel/tracing/kprobe_events
fi
true
"""


Seen = dict[str, object]
"""One load: accepted, settled, sysfs (sorted lines), running, log, signals."""


def parse_loads(stdout: str) -> list[Seen]:
    out: list[Seen] = []
    for line in stdout.splitlines():
        if line.startswith("@load "):
            _, _, rc = line.split(" ", 2)
            out.append({"accepted": rc.strip() == "0", "sysfs": [], "running": {}, "log": []})
        elif not out:
            continue
        elif line.startswith("@settled "):
            out[-1]["settled"] = line.split()[1] == "1"
        elif line.startswith("@sysfs "):
            out[-1]["sysfs"].append(line[len("@sysfs ") :])  # type: ignore[attr-defined]
        elif line.startswith("@run "):
            _, key, *rest = line.split(" ")
            text = " ".join(rest)
            out[-1]["running"][key] = text.split(":", 1)[0] if text.endswith(LIVE) else None  # type: ignore[index]
        elif line.startswith("@log "):
            out[-1]["log"].append(line[len("@log ") :])  # type: ignore[attr-defined]
    for seen in out:
        seen["sysfs"] = sorted(seen["sysfs"])  # type: ignore[call-overload]
        seen["signals"] = any("signaling remaining tasks" in x for x in seen["log"])  # type: ignore[attr-defined]
        seen["log"] = filter_check_result(seen["log"])  # type: ignore[arg-type]
    return out


def predicted(p: Plan, case: PlanCase) -> list[Seen]:
    """What the plan says each load does, in the terms the guest reports."""
    out: list[Seen] = []
    for pl in p.loads:
        t = pl.transition
        running = {}
        for k in case.observed:
            obj, _, name = k.partition(":")
            running[k] = pl.load.running.get(f"{obj}:{name},0")
        out.append(
            {
                "accepted": pl.load.accepted,
                # as klpsim_settle sees it: no patch of the host or the new
                # ones left in transition (a host's stalled one counts too)
                "settled": not any(
                    line.endswith(("/transition: 1", "/enabled: 0")) for line in pl.sysfs
                ),
                "sysfs": sorted(pl.sysfs),
                "running": running,
                "log": filter_check_result(pl.load.log),
                "signals": bool(t and t["signals"]),
            }
        )
    return out


def diff_case(case: PlanCase, model: list[Seen], real: list[Seen]) -> list[str]:
    out = []
    if len(model) != len(real):
        return [f"{case.name}: {len(model)} loads predicted, {len(real)} seen"]
    for i, (m, r) in enumerate(zip(model, real, strict=True)):
        what = f"{case.name} load {i + 1} ({case.new[i]})"
        for key in ("accepted", "settled", "signals"):
            if m[key] != r.get(key):
                out.append(f"{what}: {key} {m[key]} predicted, {r.get(key)} seen")
        if m["log"] != r["log"]:
            out.append(f"{what}: log {m['log']} predicted, {r['log']} seen")
        if m["sysfs"] != r["sysfs"]:
            ms, rs = set(m["sysfs"]), set(r["sysfs"])  # type: ignore[call-overload]
            out.append(
                f"{what}: sysfs: predicted only {sorted(ms - rs)}, seen only {sorted(rs - ms)}"
            )
        for k, v in r["running"].items():  # type: ignore[attr-defined]
            if m["running"].get(k) != v:  # type: ignore[attr-defined]
                out.append(f"{what}: {k} runs {m['running'].get(k)} predicted, {v} seen")  # type: ignore[attr-defined]
    return out


def _build_sleeper(rk, log) -> Path:
    from klpsim.real.vm.build import build_modules
    from klpsim.real.vm.debian import cache_lock, cache_root

    out = cache_root() / "build" / rk.kver / "planvm-sleeper"
    with cache_lock():
        return build_modules(rk.tree, {SLEEPER: SLEEPER_C}, out)[SLEEPER]


def run(
    kernel: str, seed: int, count: int, work: Path, log=print, only: list[int] | None = None
) -> tuple[int, int, float, dict[str, int]]:
    """Build, then for each case: state, snapshot, plan, real loads, compare;
    *only*: just these cases (indexes) of the *count*."""
    from klpsim.real.vm.api import prepare

    pool = pool_with_sleeper(seed, kernel)
    work.mkdir(parents=True, exist_ok=True)
    tomls = []
    for name, text in pool.items():
        (work / f"{name}.toml").write_text(text)
        tomls.append(work / f"{name}.toml")
    rk = prepare(kernel, log=log)
    kos = rk.build_definitions(tomls)
    sleeper = _build_sleeper(rk, log)
    cases = make_cases(pool, seed, count)
    if only:
        cases = [cases[i] for i in only]
        count = len(cases)
    agree = 0
    seen = {"loads": 0, "refused": 0, "with signals": 0, "stalled": 0, "host patches": 0,
            "in transition at the snapshot": 0, "readers asleep": 0, "kprobes": 0,
            "s in the state and collector": 0, "s copying snapshots": 0, "s planning": 0,
            "s in real loads": 0, "s resetting": 0}  # fmt: skip
    t0 = time.monotonic()

    def install(vm) -> None:  # again after a reboot: the guest forgets
        rk.install_modules(vm, list(pool), [work])
        vm.put(f"/klp/mods/{SLEEPER}.ko", sleeper.read_bytes())
        vm.put("/klp/klpsim-snapshot.sh", script_text().encode())
        vm.run("depmod -a")

    with rk.boot() as vm:
        install(vm)
        for i, case in enumerate(cases, 1):
            t1 = time.monotonic()
            diffs, rebooted = _one(vm, case, kos, work, seen)
            if rebooted:
                log(f"planvm: {case.name}: the guest rebooted to reset")
                install(vm)
            agree += not diffs
            status = "agrees" if not diffs else "DIFFERS"
            log(
                f"planvm: [{i}/{count}] {case.name} (host {' '.join(case.host) or '-'}; "
                f"new {' '.join(case.new)}): {status} ({time.monotonic() - t1:.1f} s)"
            )
            for d in diffs:
                log(f"  {d}")
    return count, agree, time.monotonic() - t0, seen


def _guest(vm, text: str, path: str, timeout: float) -> str:
    vm.put(path, text.encode())
    _, out = vm.run(f"bash {path}", timeout=timeout)
    return out


def _one(
    vm, case: PlanCase, kos: dict[str, Path], work: Path, seen: dict[str, int]
) -> tuple[list[str], bool]:
    """One case; (differences, whether the guest rebooted to reset)."""
    readers: list[int] = []
    try:
        diffs = _case(vm, case, kos, work, seen, readers)
    finally:
        t0 = time.monotonic()
        _guest(vm, cleanup_script(readers[0] if readers else None), "/tmp/planvm-clean.sh", 60)
        rebooted = vm.reset()
        seen["s resetting"] += round(time.monotonic() - t0)
    return diffs, rebooted


def _case(
    vm, case: PlanCase, kos: dict[str, Path], work: Path, seen: dict[str, int], readers: list[int]
) -> list[str]:
    t0 = time.monotonic()
    out = _guest(vm, setup_script(case), "/tmp/planvm-setup.sh", 600)
    seen["s in the state and collector"] += round(time.monotonic() - t0)
    readers += [int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("@reader ")]
    if "@target-failed" in out or "@kprobe-failed" in out:
        return [f"{case.name}: the host state could not be built:\n{out}"]
    t0 = time.monotonic()
    rc, data = vm.request("RUN cat /tmp/snap.tar.gz", timeout=300)  # the channel is raw
    seen["s copying snapshots"] += round(time.monotonic() - t0)
    if rc != 0:
        return [f"{case.name}: no snapshot: {out.strip()[-500:]}"]
    snap_path = work / f"{case.name}.tar.gz"
    snap_path.write_bytes(data)
    (work / f"{case.name}.setup.out").write_text(out)
    try:
        snap = read_snapshot(snap_path)
    except SnapshotError as e:  # the collector's fault, or the reader's: this case differs
        return [f"{case.name}: the snapshot does not read: {e}"]
    if not isinstance(snap.livepatches, Unknown):
        seen["host patches"] += len(snap.livepatches)
        seen["in transition at the snapshot"] += any(p.transition for p in snap.livepatches)
    if not isinstance(snap.tasks, Unknown):
        seen["readers asleep"] += any(
            not isinstance(t.stack, Unknown) and any(f.function == "sl1" for f in t.stack)
            for t in snap.tasks
        )
    seen["kprobes"] += case.kprobe is not None
    t0 = time.monotonic()
    try:
        p = plan(snap, [str(kos[n]) for n in case.new])
    except PlanError as e:
        return [f"{case.name}: plan failed: {e}"]
    seen["s planning"] += round(time.monotonic() - t0)
    model = predicted(p, case)
    t0 = time.monotonic()
    out = _guest(vm, load_script(case), "/tmp/planvm-load.sh", 600)
    (work / f"{case.name}.load.out").write_text(out)
    real = parse_loads(out)
    seen["s in real loads"] += round(time.monotonic() - t0)
    for r in real:
        seen["loads"] += 1
        seen["refused"] += not r["accepted"]
        seen["with signals"] += bool(r["signals"])
        seen["stalled"] += r.get("settled") is False
    return diff_case(case, model, real)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m klpsim.tools.planvm")
    ap.add_argument("--kernel", required=True, choices=[k for k in KERNELS if k != "6.1"])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--out", default="planvm-work", metavar="DIR")
    ap.add_argument("--only", type=int, action="append", metavar="I",
                    help="run only case I of the --cases (repeatable): replay a disagreement")  # fmt: skip
    args = ap.parse_args(argv)
    return compare_in_guest(
        "planvm",
        args.kernel,
        args.seed,
        "case",
        lambda log: run(args.kernel, args.seed, args.cases, Path(args.out), log, args.only),
    )


if __name__ == "__main__":
    raise SystemExit(main())
