"""``klpsim fuzz``: random scenarios, run on the model and on a real kernel.

    klpsim fuzz --kernel 6.1|6.12|replace-set --seed S --count N [--out DIR]

Each scenario is built step by step from a pool of generated modules:
livepatches of random subsets of /proc show functions (real on every
kernel), with random ``replace`` (``replace_set`` 0, 1 or 2 on the
replace-set kernel) and random states, one of a duplicate static function
(``m_show``) at a random sympos; plain target modules and patches of their
functions; and the kernel's own test modules. The step kinds
(:data:`KINDS`, ``--stats`` counts them) are loads and failing loads (with
module parameters), a duplicate load, disables, unloads, target module
loads and unloads, ``echo 0|1|garbage > enabled``, a transition stalled by
test_klp_callbacks_busy and ended by a reversal, a re-enable or a force,
reads of every sysfs attribute and /proc/1/patch_state, the callbacks,
shadow variable and state test modules, the function tracer,
kprobe_events and enabled_functions. The model picks the helper verb a step
needs (``load_lp`` or ``load_failing_mod``, ...), so a script dies on a
real kernel exactly where the kernel disagrees. Every scenario then runs
on the model and in a QEMU guest (see :mod:`klpsim.tools.realdiff`); the
filtered logs and the normalized output must agree, and each one that
differs is written to DIR as a standalone script with its modules. A
scenario that leaves tracefs state or a forced (pinned) module behind runs
in a guest of its own. The seed makes it reproducible.
"""

import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from klpsim.kernel.vmlinux import PROC_SHOW as SHOW
from klpsim.livepatch.profiles import get_profile
from klpsim.real.vm import REPLACE_SET, model_profile
from klpsim.tools.realdiff import (
    comparable,
    compare,
    model_log,
    model_output,
    normalize_output,
    run_model,
)

__all__ = ["Scenario", "KINDS", "generate", "fuzz", "stats", "module_pool"]

PREFIX = "test_klp_fz"  # check_result keeps lines naming test_klp modules
LP = "/sys/kernel/livepatch"
TRACING = "/sys/kernel/tracing"
#: The duplicate static function the sympos livepatch patches: m_show, the
#: show function of /proc/modules and of /proc/mounts (two of them on every
#: kernel of the tier; fuzz() checks the real kernel's count).
SYMPOS_FUNC = "m_show"

#: The step kinds, each counted once per scenario that has it (--stats).
KINDS = (
    "load",
    "params",
    "dup_load",
    "disable",
    "unload",
    "target",
    "grep",
    "enabled_write",
    "reenable",
    "force",
    "stall",
    "sysfs_read",
    "callbacks_demo",
    "callbacks_busy",
    "shadow_vars",
    "states",
    "sympos",
    "function_tracer",
    "kprobe_events",
    "enabled_functions",
)
#: Kinds that leave state a reused guest would carry into the next scenario
#: (tracefs's sticky flags and WARN_ONCE; a forced patch's pinned module).
FRESH_GUEST = {"force", "function_tracer", "kprobe_events", "enabled_functions"}


@dataclass
class Scenario:
    name: str
    lines: list[str] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # name -> TOML text
    kinds: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def fresh_guest(self) -> bool:
        return bool(self.kinds & FRESH_GUEST)


def module_pool(seed: int, kernel: str = "6.12", livepatches: int = 16) -> dict[str, str]:
    """The modules every scenario of a seed draws from: name -> TOML.

    One pool per seed keeps the real kernel's build to one short kbuild run.
    Target modules export their functions; the third one exports a name the
    first one does too, so loading both fails (-ENOEXEC), as on a real kernel.
    The last livepatch patches SYMPOS_FUNC at sympos 0 (ambiguous), 1, 2 or
    3 (not found).
    """
    rng = random.Random(f"{seed}:pool")
    targets = {
        f"{PREFIX}_tgt_a": ("a1", "a2"),
        f"{PREFIX}_tgt_b": ("b1", "b2"),
        f"{PREFIX}_tgt_c": ("a1", "c1"),
    }
    pool = {
        name: f"functions = {list(funcs)!r}\n".replace("'", '"') for name, funcs in targets.items()
    }
    for i in range(1, livepatches + 1):
        if kernel == REPLACE_SET:
            lines = ["livepatch = true", f"replace_set = {rng.choice((0, 1, 2))}"]
        else:
            lines = ["livepatch = true", f"replace = {str(rng.random() < 0.35).lower()}"]
        funcs = rng.sample(sorted(SHOW), rng.randint(0, 2))
        if funcs or rng.random() < 0.5:
            lines.append('[[objects]]\nname = "vmlinux"\nfuncs = [')
            lines += [f'  {{ old_name = "{f}" }},' for f in funcs]
            lines.append("]")
        if rng.random() < 0.5:
            target = rng.choice(sorted(targets))
            lines.append(f'[[objects]]\nname = "{target}"\nfuncs = [')
            lines.append(f'  {{ old_name = "{rng.choice(targets[target])}" }},')
            lines.append("]")
        if rng.random() < 0.4:
            lines.append(f"[[states]]\nid = {rng.randint(1, 2)}\nversion = {rng.randint(1, 3)}")
        pool[f"{PREFIX}_lp{i}"] = "\n".join(lines) + "\n"
    for pos in (0, 1, 2, 3):
        pool[f"{PREFIX}_sympos{pos}"] = (
            "livepatch = true\n"
            + ("replace_set = 3\n" if kernel == REPLACE_SET else "")
            + f'[[objects]]\nname = "vmlinux"\nfuncs = [ {{ old_name = "{SYMPOS_FUNC}", '
            f"old_sympos = {pos} }} ]\n"
        )
    return pool


#: The kernel's own test modules the fuzzer loads (none has a TOML).
DEMO, DEMO2 = "test_klp_callbacks_demo", "test_klp_callbacks_demo2"
CB_MOD, BUSY = "test_klp_callbacks_mod", "test_klp_callbacks_busy"
SHADOW = "test_klp_shadow_vars"
STATES = ("test_klp_state", "test_klp_state2", "test_klp_state3")


class _Builder:
    """Grows one scenario, checking each step on a fresh model run."""

    def __init__(self, rng: random.Random, kernel: str, name: str, pool: dict[str, str]):
        self.rng = rng
        self.kernel = kernel
        self.name = name
        self.sc = Scenario(name, [f"start_test '{name}'"], pool)
        self.targets = sorted(n for n, text in pool.items() if text.startswith("functions"))
        self.livepatches = sorted(n for n in pool if n not in self.targets and "_sympos" not in n)
        self.sympos = sorted(n for n in pool if "_sympos" in n)
        self.profile = get_profile(model_profile(kernel))
        self.param = "replace_set" if "replace_set" in self.profile.patch_fields else "replace"

    def run(self, lines: list[str]) -> int:
        text = "\n".join(lines) + "\n"
        status, _ = model_log(text, Path(f"{self.name}.sh"), self.kernel, [], self.sc.modules)
        return status

    def try_step(self, kind: str, *candidates: str | list[str]) -> bool:
        """Keep the first candidate (a line, or lines) the model runs cleanly."""
        for cand in candidates:
            lines = [cand] if isinstance(cand, str) else cand
            if self.run(self.sc.lines + lines) == 0:
                self.sc.lines += lines
                self.sc.kinds.add(kind)
                return True
        return False

    def state(self):
        """The model after the current lines (for choosing the next step)."""
        return run_model(self.sc.text, Path(f"{self.name}.sh"), self.kernel, [], self.sc.modules)[1]

    def _param_value(self) -> str:
        if self.param == "replace_set":
            return self.rng.choice(("0", "1", "2", "-1", "4294967295", "x"))
        return self.rng.choice(("0", "1", "-1", "2147483648", "x"))

    def step(self) -> None:
        rng = self.rng
        system = self.state()
        kernel = system.kernel
        patches = kernel.fs.listdir(LP)
        mods = kernel.modules.modules
        in_transition = system.klp.transition_patch is not None
        unloaded = [n for n in self.livepatches if n not in mods]
        free_lps = [m for m in mods if mods[m].klp and not mods[m].refcnt]
        op = rng.choice(
            ["load"] * 4
            + [
                "disable",
                "unload",
                "unload",
                "target",
                "grep",
                "dup_load",
                "enabled_write",
                "sysfs_read",
            ]
            + ["stall", "kselftest", "sympos"]
        )
        if rng.random() < 0.06:
            op = "tracefs"  # rarer: each such scenario gets a guest of its own
        if in_transition and op not in ("sysfs_read", "grep"):
            op = "sysfs_read"  # only a stall block leaves one, and ends it itself
        if op == "load" and unloaded:
            name = rng.choice(unloaded)
            if rng.random() < 0.3:
                arg = f"{self.param}={self._param_value()}"
                self.try_step("params", f"load_lp {name} {arg}", f"load_failing_mod {name} {arg}")
            else:
                self.try_step("load", f"load_lp {name}", f"load_failing_mod {name}")
        elif op == "disable" and patches:
            self.try_step("disable", f"disable_lp {rng.choice(patches)}")
        elif op == "unload" and free_lps:
            self.try_step("unload", f"unload_lp {rng.choice(free_lps)}")
        elif op == "target":
            t = rng.choice(self.targets)
            self.try_step(
                "target",
                f"unload_mod {t}" if t in mods else f"load_mod {t}",
                f"load_failing_mod {t}",
            )
        elif op == "grep":
            self._grep(mods)
        elif op == "dup_load" and mods:
            name = rng.choice(sorted(m for m in mods if m.startswith("test_klp")) or [""])
            if name:
                tool = "modprobe" if rng.random() < 0.3 else "insmod"
                self.try_step("dup_load", f"{tool} {name}")
        elif op == "enabled_write" and patches:
            p = rng.choice(patches)
            value = rng.choice(("0", "1", "garbage", "1 2", "on"))
            # Wait for the unpatching transition to end and the patch to go,
            # as disable_lp does: a fixed sleep races the transition work on
            # a loaded host (seed 202).
            lines = [f"echo {value} > {LP}/{p}/enabled"]
            if value == "0":
                lines.append(f"loop_until test ! -e {LP}/{p}")
            self.try_step("enabled_write", lines)
        elif op == "sysfs_read":
            self._sysfs_read(system)
        elif op == "stall" and DEMO not in mods and BUSY not in mods and not patches:
            self._stall()
        elif op == "kselftest":
            self._kselftest(mods, patches)
        elif op == "sympos":
            name = rng.choice(self.sympos)
            if name not in mods:
                self.try_step("sympos", f"load_lp {name}", f"load_failing_mod {name}")
        elif op == "tracefs":
            self._tracefs()

    def _grep(self, mods) -> None:
        func = self.rng.choice(sorted(SHOW))
        self.sc.lines.append(f"grep 'live patched' {SHOW[func]} > /dev/kmsg")
        self.sc.kinds.add("grep")
        for t in self.targets:
            if t in mods:
                for f in sorted(s.name for s in mods[t].text.symbols):
                    self.sc.lines.append(f"grep . /proc/{t}/{f} > /dev/kmsg")

    def _sysfs_read(self, system) -> None:
        """Every attribute of every patch and object, and a task's patch_state."""
        fs = system.kernel.fs
        files = []
        for p in fs.listdir(LP):
            for attr in self.profile.patch_attrs:
                if attr != "force":
                    files.append(f"{LP}/{p}/{attr}")
            for obj in fs.listdir(f"{LP}/{p}"):
                if fs.lookup(f"{LP}/{p}/{obj}/patched") is not None:
                    files.append(f"{LP}/{p}/{obj}/patched")
        lines = [f"grep -H . {' '.join(files)} /proc/1/patch_state"]
        if files:
            lines.append(f"cat {files[0].rsplit('/', 1)[0]}/force")  # write-only
        self.try_step("sysfs_read", lines)

    def _stall(self) -> None:
        """test_klp_callbacks_busy's worker sleeps in busymod_work_func,
        which test_klp_callbacks_demo patches, so the patching transition
        stalls. It may be reversed and re-enabled (``echo 0`` then ``echo 1
        > enabled``: the patch is disabled, then enabled again while the
        transition lasts), then it ends in a force or a reversal. Sysfs is
        read only where the state is settled: stalled, or once loop_until
        saw the transition end (a fixed sleep raced the transition work on
        a loaded host: seed 202)."""
        rng = self.rng
        demo = f"{LP}/{DEMO}"
        read = f"grep -H . {demo}/enabled {demo}/transition /proc/1/patch_state"
        lines = [f"load_mod {BUSY} block_transition=Y", f"load_lp_nowait {DEMO}", read]
        kinds = {"stall", "callbacks_busy", "callbacks_demo", "sysfs_read"}
        if rng.random() < 0.6:
            lines += [f"echo 0 > {demo}/enabled", f"echo 1 > {demo}/enabled", read]
            kinds |= {"enabled_write", "reenable"}
        forced = rng.random() < 0.45
        if forced:
            lines += [
                f"echo 1 > {demo}/force",
                f"loop_until grep -q '^0$' {demo}/transition",
                read,
            ]
            kinds.add("force")
        else:
            # The reversal: disable_lp waits for the patch to go, however
            # long the unpatching takes on the real kernel (its RCU-tasks
            # waits took more than two seconds under TCG, seed 202).
            lines.append(f"disable_lp {DEMO}")
        if self.try_step("stall", lines):
            self.sc.kinds |= kinds
            if forced:
                self.try_step("stall", [f"disable_lp {DEMO}"])
            self.try_step("stall", [f"unload_mod {BUSY}"])
            self.try_step("stall", [f"unload_lp {DEMO}"])

    def _kselftest(self, mods, patches) -> None:
        rng = self.rng
        pick = rng.choice(("demo", "shadow", "states"))
        if pick == "shadow":
            self.try_step("shadow_vars", [f"load_mod {SHADOW}", f"unload_mod {SHADOW}"])
        elif pick == "demo":
            lp = rng.choice((DEMO, DEMO2))
            if lp in mods:
                return
            lines = [f"load_mod {CB_MOD}"] if CB_MOD not in mods and rng.random() < 0.5 else []
            arg = f" {self.param}={rng.choice('01')}" if rng.random() < 0.5 else ""
            lines.append(f"load_lp {lp}{arg}")
            self.try_step("callbacks_demo", lines, [f"load_failing_mod {lp}{arg}"])
        else:
            name = rng.choice(STATES)
            if name not in mods:
                self.try_step("states", f"load_lp {name}", f"load_failing_mod {name}")

    def _tracefs(self) -> None:
        rng = self.rng
        func = rng.choice(sorted(SHOW))
        path = SHOW[func]
        kind = rng.choice(("function_tracer", "kprobe_events", "enabled_functions"))
        if kind == "function_tracer":
            lines = [
                f"echo {func} > {TRACING}/set_ftrace_filter",
                f"echo function > {TRACING}/current_tracer",
                f"cat {path} > /dev/null",
                f"echo nop > {TRACING}/current_tracer",
                f"grep -c {func} {TRACING}/trace",
                f"echo > {TRACING}/set_ftrace_filter",
                f"echo > {TRACING}/trace",
            ]
        elif kind == "kprobe_events":
            ev = f"{TRACING}/events/test_klp_fz/kp"
            lines = [
                f"echo 'p:test_klp_fz/kp {func}' > {TRACING}/kprobe_events",
                f"cat {TRACING}/kprobe_events",
                f"echo 1 > {ev}/enable",
                f"cat {path} > /dev/null",
                f"echo 0 > {ev}/enable",
                f"grep -c {func} {TRACING}/trace",
                f"echo > {TRACING}/kprobe_events",
                f"echo > {TRACING}/trace",
            ]
        else:
            lines = [f"cat {TRACING}/enabled_functions"]
        self.try_step(kind, lines)

    def cleanup(self) -> None:
        """Leave the guest as it was: disable and unload everything."""
        kernel = self.state().kernel
        for name in reversed(kernel.fs.listdir(LP)):
            self.try_step("cleanup", f"disable_lp {name}")
        for name in sorted(kernel.modules.modules):
            if name.startswith("test_klp"):
                self.try_step("cleanup", f"unload_mod {name}")
        self.sc.kinds.discard("cleanup")


def generate(
    kernel: str, seed: int, count: int, steps: tuple[int, int] = (5, 10)
) -> list[Scenario]:
    """*count* scenarios from one pool; the same seed gives the same scenarios."""
    pool = module_pool(seed, kernel)
    out = []
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        b = _Builder(rng, kernel, f"fuzz_{seed}_{i}", pool)
        for _ in range(rng.randint(*steps)):
            b.step()
        b.cleanup()
        # Each scenario keeps only the modules it uses.
        b.sc.modules = {n: t for n, t in pool.items() if n in b.sc.text}
        out.append(b.sc)
    return out


def stats(scenarios: list[Scenario]) -> dict[str, float]:
    """The share of scenarios that have each step kind (KINDS order)."""
    counts = Counter(k for sc in scenarios for k in sc.kinds)
    n = len(scenarios) or 1
    return {k: counts[k] / n for k in KINDS}


def write_scenario(sc: Scenario, folder: Path, header: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    mods = folder / "test_modules"
    mods.mkdir(exist_ok=True)
    for name, text in sc.modules.items():
        (mods / f"{name}.toml").write_text(text)
    path = folder / f"{sc.name}.sh"
    path.write_text("".join(f"# {h}\n" for h in header.splitlines()) + sc.text)
    return path


def fuzz(kernel: str, seed: int, count: int, out_dir: Path, out, log, step=None) -> int:
    """Generate, run both sides, write mismatches; 1 if any scenario differs.
    *step(detail)*: one scenario is done (a progress display); without it,
    *log* says so."""
    from klpsim.real.vm.api import prepare

    log(f"fuzz: kernel {kernel}, seed {seed}, {count} scenarios")
    rk = prepare(kernel, log=log)
    real = rk.vmlinux_symbols().get(SYMPOS_FUNC, 0)
    if real != 2:
        raise RuntimeError(f"fuzz: {kernel} has {real} {SYMPOS_FUNC} (the model has 2)")
    scenarios = generate(kernel, seed, count)
    work = out_dir / f".work-{kernel}-{seed}"
    paths = [write_scenario(sc, work) for sc in scenarios]
    modules = [str(work / "test_modules")]
    rk.prebuild(modules)  # one kbuild run for the whole pool
    mismatches = 0
    shared = rk.boot()
    try:
        for i, (sc, path) in enumerate(zip(scenarios, paths, strict=True), 1):
            if sc.fresh_guest:
                with rk.boot() as vm:
                    res = rk.run_script(vm, path, modules)
            else:
                res = rk.run_script(shared, path, modules)
            _, model, model_out = model_output(sc.text, path, kernel, [], sc.modules)
            d = compare(sc.name, comparable(model, False), comparable(res.log_lines, True))
            d += compare(
                f"{sc.name} output",
                normalize_output(model_out).splitlines(),
                normalize_output(res.stdout).splitlines(),
            )
            if step is not None:
                step(f"{sc.name}: {'DIFFERS' if d else 'same'}")
            else:
                log(f"fuzz: [{i}/{count}] {sc.name}: {'DIFFERS' if d else 'same'}")
            if d:
                mismatches += 1
                dest = write_scenario(
                    sc,
                    out_dir / kernel,
                    f"klpsim fuzz --kernel {kernel} --seed {seed}: this scenario's logs differ.\n",
                )
                out.write(f"--- {dest}\n{d}")
                if sc.fresh_guest is False and res.exit_status != 0:
                    shared.close()  # a script that died may have left anything behind
                    shared = rk.boot()
    finally:
        shared.close()
    shutil.rmtree(work, ignore_errors=True)
    log(f"fuzz: {count - mismatches}/{count} scenarios agree (seed {seed})")
    return 1 if mismatches else 0
