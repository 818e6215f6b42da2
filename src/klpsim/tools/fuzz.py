"""``klpsim fuzz``: random scenarios, run on the model and on a real kernel.

    klpsim fuzz --kernel 6.1|6.12|replace-set --seed S --count N [--out DIR]

Each scenario is built step by step from a pool of generated modules:
livepatches of random subsets of /proc show functions (real on every
kernel), with random ``replace`` (``replace_set`` 0, 1 or 2 on the
replace-set kernel) and random states; plain target modules
and patches of their functions. Steps are loads, failing loads, disables,
unloads, target module loads and unloads, and greps of the patched files
into the kernel log. The model picks the helper verb a step needs
(``load_lp`` or ``load_failing_mod``, ...), so a script dies on a real
kernel exactly where the kernel disagrees. Every scenario then runs on the
model and in one QEMU guest (see :mod:`klpsim.tools.realdiff`); each one
whose logs differ is written to DIR as a standalone script with its modules.
The seed makes it reproducible.
"""

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from klpsim.kernel.vmlinux import PROC_SHOW as SHOW
from klpsim.tools.realdiff import comparable, compare, model_log, run_model

__all__ = ["Scenario", "generate", "fuzz"]

PREFIX = "test_klp_fz"  # check_result keeps lines naming test_klp modules


@dataclass
class Scenario:
    name: str
    lines: list[str] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # name -> TOML text

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def module_pool(seed: int, kernel: str = "6.12", livepatches: int = 16) -> dict[str, str]:
    """The modules every scenario of a seed draws from: name -> TOML.

    One pool per seed keeps the real kernel's build to one short kbuild run.
    Target modules export their functions; the third one exports a name the
    first one does too, so loading both fails (-ENOEXEC), as on a real kernel.
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
        if kernel == "replace-set":
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
    return pool


class _Builder:
    """Grows one scenario, checking each step on a fresh model run."""

    def __init__(self, rng: random.Random, kernel: str, name: str, pool: dict[str, str]):
        self.rng = rng
        self.kernel = kernel
        self.name = name
        self.sc = Scenario(name, [f"start_test '{name}'"], pool)
        self.targets = sorted(n for n, text in pool.items() if text.startswith("functions"))
        self.livepatches = sorted(n for n in pool if n not in self.targets)

    def run(self, lines: list[str]) -> int:
        text = "\n".join(lines) + "\n"
        status, _ = model_log(text, Path(f"{self.name}.sh"), self.kernel, [], self.sc.modules)
        return status

    def try_step(self, *candidates: str) -> bool:
        """Keep the first candidate line the model runs cleanly."""
        for line in candidates:
            if self.run(self.sc.lines + [line]) == 0:
                self.sc.lines.append(line)
                return True
        return False

    def state(self):
        """The model after the current lines (for choosing the next step)."""
        return run_model(self.sc.text, Path(f"{self.name}.sh"), self.kernel, [], self.sc.modules)[1]

    def step(self) -> None:
        rng = self.rng
        kernel = self.state().kernel
        patches = kernel.fs.listdir("/sys/kernel/livepatch")
        mods = kernel.modules.modules
        unloaded = [n for n in self.livepatches if n not in mods]
        free_lps = [m for m in mods if mods[m].klp and not mods[m].refcnt]
        op = rng.choice(["load", "load", "load", "disable", "unload", "target", "grep", "grep"])
        if op == "load" and unloaded:
            name = rng.choice(unloaded)
            self.try_step(f"load_lp {name}", f"load_failing_mod {name}")
        elif op == "disable" and patches:
            self.try_step(f"disable_lp {rng.choice(patches)}")
        elif op == "unload" and free_lps:
            self.try_step(f"unload_lp {rng.choice(free_lps)}")
        elif op == "target":
            t = rng.choice(self.targets)
            self.try_step(
                f"unload_mod {t}" if t in mods else f"load_mod {t}", f"load_failing_mod {t}"
            )
        elif op == "grep":
            func = rng.choice(sorted(SHOW))
            self.sc.lines.append(f"grep 'live patched' {SHOW[func]} > /dev/kmsg")
            for t in self.targets:
                if t in mods:
                    for f in sorted(s.name for s in mods[t].text.symbols):
                        self.sc.lines.append(f"grep . /proc/{t}/{f} > /dev/kmsg")

    def cleanup(self) -> None:
        """Leave the guest as it was: disable and unload everything."""
        kernel = self.state().kernel
        for name in reversed(kernel.fs.listdir("/sys/kernel/livepatch")):
            self.try_step(f"disable_lp {name}")
        for name in sorted(kernel.modules.modules):
            if name.startswith(PREFIX):
                self.try_step(f"unload_mod {name}")


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
    scenarios = generate(kernel, seed, count)
    work = out_dir / f".work-{kernel}-{seed}"
    paths = [write_scenario(sc, work) for sc in scenarios]
    rk = prepare(kernel, log=log)
    modules = [str(work / "test_modules")]
    rk.prebuild(modules)  # one kbuild run for the whole pool
    mismatches = 0
    with rk.boot() as vm:
        for i, (sc, path) in enumerate(zip(scenarios, paths, strict=True), 1):
            res = rk.run_script(vm, path, modules)
            _, model = model_log(sc.text, path, kernel, [], sc.modules)
            d = compare(sc.name, comparable(model, False), comparable(res.log_lines, True))
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
    shutil.rmtree(work, ignore_errors=True)
    log(f"fuzz: {count - mismatches}/{count} scenarios agree (seed {seed})")
    return 1 if mismatches else 0
