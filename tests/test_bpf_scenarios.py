"""The BPF scenarios of tests/scenarios/bpf, on 7.1 and replace-set, against
their expected transcripts (``NAME.PROFILE.out``, or ``NAME.out`` when both
kernels print the same). ``KLPSIM_REGEN=1`` rewrites the expected files; a
rewrite is a change to review like any other.
"""

import os
from pathlib import Path

import pytest

from harness import ROOT, klpsim

SCENARIOS = ROOT / "tests" / "scenarios" / "bpf"
EXAMPLE = ROOT / "examples" / "bpf-hook-patch.sh"
PROFILES = ("7.1", "replace-set")
CASES = [(p, k) for p in sorted(SCENARIOS.glob("*.sh")) + [EXAMPLE] for k in PROFILES]


def _expected_path(script: Path, profile: str) -> Path:
    specific = SCENARIOS / "expected" / f"{script.stem}.{profile}.out"
    return specific if specific.exists() else SCENARIOS / "expected" / f"{script.stem}.out"


def _run(script: Path, profile: str) -> str:
    run = klpsim("run", "--kernel", profile, str(script))
    return f"status {run.status}\n--- stdout\n{run.out}--- stderr\n{run.err}"


@pytest.mark.parametrize(("script", "profile"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_scenario(script: Path, profile: str):
    got = _run(script, profile)
    if os.environ.get("KLPSIM_REGEN"):
        (SCENARIOS / "expected").mkdir(exist_ok=True)
        other = [k for k in PROFILES if k != profile][0]
        same = got == _run(script, other)
        path = SCENARIOS / "expected" / (f"{script.stem}.out" if same else
                                         f"{script.stem}.{profile}.out")  # fmt: skip
        path.write_text(got)
        return
    assert got == _expected_path(script, profile).read_text()
