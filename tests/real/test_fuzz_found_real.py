"""tests/scenarios/fuzz-found on the real kernels: what klpsim fuzz found,
fixed in the model (tests/test_fuzz_found.py), logs and prints the same on
every real kernel. Each script runs in a guest of its own: an oops leaves
klp_mutex held."""

from __future__ import annotations

from pathlib import Path

import pytest

from klpsim.real.vm import KERNELS, model_profile
from klpsim.tools.realdiff import diff_one

FOUND = Path(__file__).resolve().parents[1] / "scenarios" / "fuzz-found"
SCRIPTS = sorted(FOUND.glob("*.sh"))
MODULES = [FOUND / "test_modules"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_fuzz_found_scenario_agrees(kernel, script):
    from klpsim.real.vm.api import prepare

    rk = prepare(kernel, log=lambda msg: None)
    with rk.boot() as vm:
        res = diff_one(rk, vm, script, model_profile(kernel), MODULES, output=True)
    assert res.diff == "", res.diff
    if script.stem == "state-without-data":
        assert res.real_status != 0 and "Killed" in res.real_output, res.real_output
    else:
        assert res.real_status == 0, res.real_output
