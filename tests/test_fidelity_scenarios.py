"""The fidelity scenarios of tests/scenarios/fidelity (kmod's wording, a
replacement's chosen return value, replace_set as an unsigned int) on the
profiles of the kernels they are checked against in QEMU
(tests/real/test_fidelity_real.py), against their expected transcripts:
``NAME.PROFILE.out``. ``KLPSIM_REGEN=1`` rewrites them; a rewrite is a
change to review.
"""

import os
from pathlib import Path

import pytest

from harness import ROOT, klpsim

SCENARIOS = ROOT / "tests" / "scenarios" / "fidelity"
#: script stem -> the profiles (and real kernels) it is checked on
KERNELS = {
    "kmod-wording": ("6.1", "6.12", "replace-set"),
    "return-value": ("6.1", "6.12", "replace-set"),
    "replace-set-u32": ("replace-set",),
}
CASES = [(SCENARIOS / f"{stem}.sh", k) for stem, ks in KERNELS.items() for k in ks]


def _run(script: Path, profile: str) -> str:
    run = klpsim("run", "--kernel", profile, str(script))
    return f"status {run.status}\n--- stdout\n{run.out}--- stderr\n{run.err}"


@pytest.mark.parametrize(("script", "profile"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_scenario(script: Path, profile: str):
    expected = SCENARIOS / "expected" / f"{script.stem}.{profile}.out"
    got = _run(script, profile)
    if os.environ.get("KLPSIM_REGEN"):
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(got)
        return
    assert got == expected.read_text()


def test_every_script_is_checked():
    assert sorted(p.stem for p in SCENARIOS.glob("*.sh")) == sorted(KERNELS)
