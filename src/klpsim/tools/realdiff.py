"""``klpsim diff``: the same scenario scripts on the model and on a real kernel.

    klpsim diff --kernel 6.1|6.12 [--modules DIR]... SCRIPT...

Each script runs on the model's profile of that kernel and in one booted
QEMU guest of Debian's kernel. The two kernel logs are filtered as
functions.sh's check_result filters them (lines with ``livepatch:`` or
``test_klp``, no taint notices) and compared; a mismatch prints a unified
diff. Exit 1 if any script differs.

Before comparing, the guest's log loses what the kernel's own
``setup_config`` logged before the script's first line (the model starts in
that configured state), and both logs start after the first
``start_test`` canary when the script has one.
"""

import difflib
from pathlib import Path

from klpsim.model.system import System
from klpsim.scenario.helpers import filter_check_result
from klpsim.scenario.parser import decode_script
from klpsim.session import Session

__all__ = ["run_model", "model_log", "comparable", "compare", "diff_scripts"]

CANARY = "livepatch kselftest timestamp:"
SETUP_CONFIG_LINES = ("livepatch: kernel.ftrace_enabled = 1",)


def run_model(
    text: str, path: Path, kernel: str, module_dirs: list[Path], texts: dict[str, str] | None = None
) -> tuple[int, System]:
    """Run a script on a freshly booted model: (exit status, the System after it)."""
    session = Session(
        kernel, module_dirs=module_dirs, script_dir=path.parent, definitions=texts, path=str(path)
    )
    return session.run(text), session.system


def model_log(
    text: str, path: Path, kernel: str, module_dirs: list[Path], texts: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run a script on the model: (exit status, ``dmesg --notime`` lines)."""
    status, system = run_model(text, path, kernel, module_dirs, texts)
    return status, system.kernel.log.dmesg(notime=True)


def comparable(lines: list[str], from_guest: bool) -> list[str]:
    """The lines check_result would compare, from the first canary on."""
    starts = [i for i, line in enumerate(lines) if line.startswith(CANARY)]
    if starts:
        lines = lines[starts[0] + 1 :]
    elif from_guest:
        while lines and lines[0] in SETUP_CONFIG_LINES:
            lines = lines[1:]
    return filter_check_result(lines)


def compare(name: str, model: list[str], real: list[str]) -> str:
    """A unified diff (empty when equal)."""
    if model == real:
        return ""
    return (
        "\n".join(
            difflib.unified_diff(model, real, f"{name} (klpsim)", f"{name} (real)", lineterm="")
        )
        + "\n"
    )


def diff_scripts(kernel: str, scripts: list[Path], module_dirs: list[Path], out, log) -> int:
    """Run *scripts* on both sides; print diffs to *out*; 1 if any differ."""
    from klpsim.real.vm.api import prepare

    rk = prepare(kernel, log=log)
    mismatches = 0
    with rk.boot() as vm:
        for path in scripts:
            text = decode_script(path.read_bytes())
            _, model = model_log(text, path, kernel, module_dirs)
            res = rk.run_script(vm, path, [str(d) for d in module_dirs])
            d = compare(str(path), comparable(model, False), comparable(res.log_lines, True))
            if d:
                mismatches += 1
                out.write(d)
            log(f"{path}: {'DIFFERS' if d else 'same'}")
    return 1 if mismatches else 0
