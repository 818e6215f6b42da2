"""``klpsim check`` against a real kernel: random sets of real ``.ko`` modules.

    python -m klpsim.tools.checkvm --kernel 6.1|6.12|replace-set --seed S --sets N [--out DIR]

The modules are the fuzz pool's (tools/fuzz.py: livepatches of /proc show
functions and of target-module functions, random ``replace`` -- on the
replace-set kernel a random ``replace_set`` of 0, 1 or 2 -- and states,
three target modules), generated as C for the kernel (real/vm/modgen.py,
the REPLACE_SET_KERNEL capability on replace-set) and built into ``.ko``
files for it in one kbuild run. The predictions use the kernel's model
profile (real/vm's model_profile(): the replace-set kernel is predicted by
``replace-set-6.12``). Each random set takes 2 to 5
of the livepatches, in a random order, after the target modules they patch.

For each set, ``check``'s own loader (tools/check.py ``run_order``) predicts,
reading the same ``.ko`` files: whether each load is accepted, the enabled
patches in /sys/kernel/livepatch after it, and for every /proc show function
(and every function of a loaded target) which patch's code runs, or the
original. One guest boot then runs every set as a script that loads the same
files with insmod and records the same three things after each load (the
generated replacements print ``<module>: this has been live patched``, the
originals something else). Every difference is printed; the exit status is 1
if any set disagrees.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from klpsim.kernel.vmlinux import PROC_SHOW
from klpsim.livepatch.profiles import get_profile
from klpsim.real.vm import KERNELS, model_profile
from klpsim.tools.check import Patch, Target, read_inputs, run_order
from klpsim.tools.fuzz import module_pool

__all__ = ["CheckSet", "make_sets", "predict", "guest_script", "parse_guest", "main"]

LIVE = "this has been live patched"
# tgt_a and tgt_c both export a1: loading both fails (-ENOEXEC); keep one
_CLASHES = ({"test_klp_fz_tgt_a", "test_klp_fz_tgt_c"},)


@dataclass
class CheckSet:
    """One random set: targets loaded first, then the patches in order."""

    name: str
    targets: list[str]
    patches: list[str]


def make_sets(pool: dict[str, str], seed: int, count: int) -> list[CheckSet]:
    """*count* random sets from the pool; the same seed gives the same sets."""
    lps = sorted(n for n, t in pool.items() if t.startswith("livepatch") and "_sympos" not in n)
    targets = sorted(n for n, t in pool.items() if t.startswith("functions"))
    out = []
    for i in range(count):
        rng = random.Random(f"{seed}:set:{i}")
        chosen = rng.sample(lps, rng.randint(2, 5))
        wanted = [t for t in targets if any(f'name = "{t}"' in pool[p] for p in chosen)]
        for clash in _CLASHES:
            both = sorted(clash & set(wanted))
            if len(both) > 1:
                wanted.remove(rng.choice(both))
        out.append(CheckSet(f"set_{seed}_{i}", wanted, chosen))
    return out


Observation = tuple[bool, list[str], dict[str, str | None]]
"""After one load: (accepted, enabled patches, function -> patch running it or None)."""


def _observed_functions(targets: list[str], pool: dict[str, str]) -> list[str]:
    keys = [f"vmlinux:{f}" for f in sorted(PROC_SHOW)]
    for t in targets:
        funcs = pool[t].split("[", 1)[1].split("]", 1)[0]
        keys += [f"{t}:{f.strip().strip(chr(34))}" for f in funcs.split(",") if f.strip()]
    return keys


def predict(
    s: CheckSet, kos: dict[str, Path], kernel: str, pool: dict[str, str]
) -> list[Observation]:
    """What check's loader says each load of *s* does."""
    profile = get_profile(model_profile(kernel))
    patches, targets = read_inputs([str(kos[n]) for n in s.targets + s.patches], profile)
    order: list[Patch] = [next(p for p in patches if p.name == n) for n in s.patches]
    tgts: list[Target] = [next(t for t in targets if t.name == n) for n in s.targets]
    out: list[Observation] = []
    keys = _observed_functions(s.targets, pool)
    for load in run_order(profile, order, tgts):
        running = {}
        for k in keys:
            obj, _, name = k.partition(":")
            running[k] = load.running.get(f"{obj}:{name},0")
        out.append((load.accepted, sorted(load.patches_after), running))
    return out


_GUEST_HELPERS = r"""
klpsim_settle() {  # no transition, no replaced patch waiting to be freed
	local i f v busy
	for ((i = 0; i < 600; i++)); do
		busy=
		for f in /sys/kernel/livepatch/*/transition /sys/kernel/livepatch/*/enabled; do
			[[ -e $f ]] || continue
			read -r v < "$f"
			[[ $f == */transition && $v == 1 ]] && busy=1
			[[ $f == */enabled && $v == 0 ]] && busy=1
		done
		[[ -z $busy ]] && return
		sleep 0.1
	done
}
klpsim_patches() {
	local p out=
	for p in /sys/kernel/livepatch/*; do [[ -d $p ]] && out+="${p##*/} "; done
	echo "@patches $out"
}
klpsim_run() { local line=; read -r line < "$2"; echo "@run $1 $line"; }
"""


def guest_script(s: CheckSet, pool: dict[str, str]) -> str:
    """The set as a script for the guest: insmod each file, wait for the
    transition, then print what is enabled and what each function runs
    (bash builtins only: a fork costs a lot under TCG)."""
    lines = [f"# klpsim checkvm {s.name}", _GUEST_HELPERS.strip()]
    lines += [f"insmod /klp/mods/{t}.ko || echo '@target-failed {t}'" for t in s.targets]
    files = [(f"vmlinux:{f}", path) for f, path in sorted(PROC_SHOW.items())]
    for k in _observed_functions(s.targets, pool)[len(files) :]:
        obj, _, f = k.partition(":")
        files.append((k, f"/proc/{obj}/{f}"))
    for p in s.patches:
        lines += [
            f"insmod /klp/mods/{p}.ko",
            f'echo "@load {p} $?"',
            "klpsim_settle",
            "klpsim_patches",
        ]
        lines += [f"klpsim_run {k} {path}" for k, path in files]
    return "\n".join(lines) + "\n"


def parse_guest(stdout: str, s: CheckSet) -> list[Observation]:
    out: list[Observation] = []
    for line in stdout.splitlines():
        if line.startswith("@load "):
            _, _, rc = line.split(" ", 2)
            out.append((rc.strip() == "0", [], {}))
        elif line.startswith("@patches") and out:
            out[-1][1].extend(sorted(line.split()[1:]))
        elif line.startswith("@run ") and out:
            _, key, *rest = line.split(" ")
            text = " ".join(rest)
            out[-1][2][key] = text.split(":", 1)[0] if text.endswith(LIVE) else None
    return out


def _diff(s: CheckSet, model: list[Observation], real: list[Observation]) -> list[str]:
    out = []
    if len(model) != len(real):
        return [f"{s.name}: {len(model)} loads predicted, {len(real)} seen"]
    for i, (m, r) in enumerate(zip(model, real, strict=True)):
        what = f"{s.name} load {i + 1} ({s.patches[i]})"
        if m[0] != r[0]:
            out.append(f"{what}: accepted {m[0]} predicted, {r[0]} seen")
        if m[1] != r[1]:
            out.append(f"{what}: patches {m[1]} predicted, {r[1]} seen")
        for k in r[2]:
            if m[2].get(k) != r[2][k]:
                out.append(f"{what}: {k} runs {m[2].get(k)} predicted, {r[2][k]} seen")
    return out


def run(
    kernel: str, seed: int, count: int, work: Path, log=print
) -> tuple[int, int, float, dict[str, int]]:
    """Build, predict, run; (sets, sets that agree, guest seconds, what was
    seen: loads, refused loads, replaces, functions running a patch)."""
    from klpsim.real.vm.api import prepare

    pool = module_pool(seed, kernel)
    work.mkdir(parents=True, exist_ok=True)
    tomls = []
    for name, text in pool.items():
        (work / f"{name}.toml").write_text(text)
        tomls.append(work / f"{name}.toml")
    rk = prepare(kernel, log=log)
    kos = rk.build_definitions(tomls)  # one kbuild run for the pool
    sets = make_sets(pool, seed, count)
    agree = 0
    seen = {"loads": 0, "refused": 0, "replacing loads": 0, "patched function readings": 0}
    t0 = time.monotonic()
    with rk.boot() as vm:
        rk.install_modules(vm, list(pool), [work])
        for i, s in enumerate(sets, 1):
            model = predict(s, kos, kernel, pool)
            res = rk.run_script(vm, guest_script(s, pool), [work])
            real = parse_guest(res.stdout, s)
            diffs = _diff(s, model, real)
            for i_load, (accepted, after, running) in enumerate(real):
                seen["loads"] += 1
                seen["refused"] += not accepted
                before = real[i_load - 1][1] if i_load else []
                seen["replacing loads"] += accepted and bool(set(before) - set(after))
                seen["patched function readings"] += sum(v is not None for v in running.values())
            if "@target-failed" in res.stdout:
                diffs.append(f"{s.name}: a target did not load:\n{res.stdout}")
            agree += not diffs
            status = "agrees" if not diffs else "DIFFERS"
            log(
                f"checkvm: [{i}/{count}] {s.name} ({' '.join(s.patches)}): {status} ({res.seconds:.1f} s)"
            )
            for d in diffs:
                log(f"  {d}")
    return count, agree, time.monotonic() - t0, seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m klpsim.tools.checkvm")
    ap.add_argument("--kernel", required=True, choices=KERNELS)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--sets", type=int, default=20)
    ap.add_argument("--out", default="checkvm-work", metavar="DIR")
    args = ap.parse_args(argv)
    return compare_in_guest(
        "checkvm",
        args.kernel,
        args.seed,
        "set",
        lambda log: run(args.kernel, args.seed, args.sets, Path(args.out), log),
    )


Comparison = tuple[int, int, float, dict[str, int]]
"""A guest comparison's (items, items that agree, seconds, what was seen)."""


def compare_in_guest(
    tool: str, kernel: str, seed: int, unit: str, run: Callable[[Callable[[str], None]], Comparison]
) -> int:
    """A VM comparison tool's main (checkvm, planvm): run it with a log on
    stderr, print the two summary lines; exit 0 when every item agrees, 1
    when one does not, 2 when the guest cannot be had."""
    from klpsim.real.vm.errors import VMError

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        n, agree, secs, seen = run(log)
    except VMError as e:
        print(f"klpsim: {e}", file=sys.stderr)
        return 2
    print(f"{tool}: kernel {kernel}, seed {seed}: {agree}/{n} {unit}s agree "
          f"({secs:.0f} s in one guest boot, {secs / max(n, 1):.1f} s a {unit})")  # fmt: skip
    print(f"{tool}: seen: " + ", ".join(f"{v} {k}" for k, v in seen.items()))
    return 0 if agree == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
