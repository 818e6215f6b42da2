"""The replace-set kernel (rskernel.py) against the model's profile of it,
``replace-set-6.12`` (realdiff.model_log maps the kernel to it).

Every script of tests/scenarios/replace-set that uses no simulator-only
verb runs in the guest of Debian's 6.12 built with the replace_set v2 rules:
it must pass its own check_result there, and its log, filtered as
check_result filters it, must equal the model's.  A few facts of the kernel change are checked on the kernel alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from klpsim.scenario.parser import parse_script
from klpsim.scenario.verbs import default_registry
from klpsim.tools.realdiff import comparable, model_log

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "replace-set"
SCRIPTS = sorted(SCENARIOS.glob("*.sh"))
#: Verb families a real kernel has no meaning for (klpsim.sh stops a script at one).
SIM_FAMILIES = {"simulator", "bpf", "status"}
#: Scripts that show what only the model can: a simulated sleeping kthread,
#: and the status views (klp_blocking, func_stack) that say where it sleeps.
MODEL_ONLY = {"kthread-holds-cumulative-replace"}
REAL = [p for p in SCRIPTS if p.stem not in MODEL_ONLY]


def _uses_simulator_verbs(path: Path) -> bool:
    registry = default_registry()
    return any(
        (verb := registry.get(cmd.words[0])) is not None and verb.family in SIM_FAMILIES
        for cmd in parse_script(path.read_text(), str(path))
    )


def test_every_scenario_is_here():
    assert len(SCRIPTS) == 15
    assert {p.stem for p in SCRIPTS if _uses_simulator_verbs(p)} == MODEL_ONLY


@pytest.mark.parametrize("script", REAL, ids=lambda p: p.stem)
def test_scenario_matches_the_model(rs_guest, script):
    rk, vm = rs_guest
    res = rk.run_script(vm, script)
    assert res.exit_status == 0, res.stdout
    status, model = model_log(script.read_text(), script, "replace-set", [])
    assert status == 0
    assert comparable(res.log_lines, True) == comparable(model, False)


def test_replace_set_is_an_unsigned_int(rs_guest):
    """v2 2/4: an int module parameter copied into the u32 field, shown with %u."""
    rk, vm = rs_guest
    res = rk.run_script(
        vm,
        """load_lp test_klp_atomic_replace replace_set=-1
cat /sys/kernel/livepatch/test_klp_atomic_replace/replace_set
stat -c '%A %n' /sys/kernel/livepatch/test_klp_atomic_replace/* | sort
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
""",
    )
    assert res.exit_status == 0, res.stdout
    d = "/sys/kernel/livepatch/test_klp_atomic_replace"
    assert res.stdout == (
        "4294967295\n"
        f"--w------- {d}/force\n"
        f"-r--r--r-- {d}/replace_set\n"
        f"-r--r--r-- {d}/transition\n"
        f"-rw-r--r-- {d}/enabled\n"
        f"drwxr-xr-x {d}/vmlinux\n"
    )
