"""The BPF scenarios of tests/scenarios/bpf, on 7.1 and replace-set, against
their expected transcripts (``NAME.PROFILE.out``, or ``NAME.out`` when both
kernels print the same). ``KLPSIM_REGEN=1`` rewrites the expected files; a
rewrite is a change to review like any other.
"""

import os
import re
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


_NOTE = re.compile(r"reports (\S+); calls run (\S+)")
_RAN = re.compile(r"^  ran (\S+)", re.M)


@pytest.mark.parametrize(("script", "profile"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_note_says_what_the_next_call_runs(script: Path, profile: str, tmp_path: Path):
    """After every bpf_attachments of the scenario, each NOTE that says
    "calls run X" agrees with the ``call`` made right then: the same body
    runs, or nothing does ("nothing" is the trampoline's skip)."""
    lines = script.read_text().splitlines()
    checked = 0
    for i, line in enumerate(lines):
        if line.strip() != "bpf_attachments":
            continue
        prefix = "\n".join(lines[: i + 1]) + "\n"
        table = _run_text(prefix, script, profile, tmp_path).rpartition("$ bpf_attachments\n")[2]
        for func, runs in sorted(set(_NOTE.findall(table))):
            runs = runs.removesuffix(":")
            out = _run_text(prefix + f"call {func}\n", script, profile, tmp_path)
            ran = _RAN.findall(out)[-1].removesuffix(":")
            assert ran == runs, (script.name, i + 1, func, runs, ran)
            checked += 1
    if script.stem == "note-next-call":
        assert checked == 4  # the case that bit: the note must not be vacuous


def _run_text(text: str, script: Path, profile: str, tmp_path: Path) -> str:
    path = tmp_path / script.name
    path.write_text(text)
    (tmp_path / "test_modules").mkdir(exist_ok=True)
    for toml in (script.parent / "test_modules").glob("*.toml"):
        (tmp_path / "test_modules" / toml.name).write_text(toml.read_text())
    run = klpsim("run", "--kernel", profile, str(path))
    assert run.status == 0, run.err
    return run.out
