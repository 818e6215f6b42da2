"""The tracefs scenarios of tests/scenarios/tracefs (aggregated kprobes,
kprobe_events, enabled_functions, function_graph next to a livepatch) on the
profiles of the kernels they were checked against (Debian's 6.1 and 6.12 in
QEMU, tests/real/test_tracefs_real.py) and 7.1, against their expected
transcripts: ``NAME.PROFILE.out``, or ``NAME.out`` when every profile prints
the same. ``KLPSIM_REGEN=1`` rewrites them; a rewrite is a change to review.
"""

import os
from pathlib import Path

import pytest

from harness import ROOT, klpsim

SCENARIOS = ROOT / "tests" / "scenarios" / "tracefs"
PROFILES = ("6.1", "6.12", "7.1")
CASES = [(p, k) for p in sorted(SCENARIOS.glob("*.sh")) for k in PROFILES]


def _expected_path(script: Path, profile: str) -> Path:
    specific = SCENARIOS / "expected" / f"{script.stem}.{profile}.out"
    return specific if specific.exists() else SCENARIOS / "expected" / f"{script.stem}.out"


def _run(script: Path, profile: str) -> str:
    run = klpsim("run", "--kernel", profile, str(script))
    return f"status {run.status}\n--- stdout\n{run.out}--- stderr\n{run.err}"


def _regen(script: Path) -> None:
    outs = {k: _run(script, k) for k in PROFILES}
    expected = SCENARIOS / "expected"
    for old in expected.glob(f"{script.stem}.*out"):
        old.unlink()
    if len(set(outs.values())) == 1:
        (expected / f"{script.stem}.out").write_text(outs[PROFILES[0]])
    else:
        for k, text in outs.items():
            (expected / f"{script.stem}.{k}.out").write_text(text)


@pytest.mark.parametrize(("script", "profile"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_scenario(script: Path, profile: str):
    if os.environ.get("KLPSIM_REGEN"):
        if profile == PROFILES[0]:
            _regen(script)
        return
    assert _run(script, profile) == _expected_path(script, profile).read_text()


def test_every_scenario_has_an_expected_transcript():
    for script in SCENARIOS.glob("*.sh"):
        for profile in PROFILES:
            assert _expected_path(script, profile).exists(), (script.name, profile)
