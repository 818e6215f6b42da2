"""The fidelity scenarios (tests/scenarios/fidelity: kmod's wording, a
replacement's chosen return value, replace_set as an unsigned int) on the
real kernels, against the model's profile of each: the log lines
check_result compares and the script's own output once normalized
(realdiff.normalize_output). The scripts leave the guest as they found it,
so they share the session's guest of each kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from klpsim.tools.realdiff import diff_one

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import _guest  # noqa: E402  (tests/real/conftest.py)
from test_fidelity_scenarios import CASES  # noqa: E402


@pytest.mark.parametrize(("script", "kernel"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_fidelity_scenario_agrees_with_the_real_kernel(script: Path, kernel: str):
    rk, vm = _guest(kernel)
    res = diff_one(rk, vm, script, kernel, [], output=True)
    assert res.diff == "", res.diff
