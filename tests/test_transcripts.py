"""Transcripts, notes included, compared exactly: the scenarios of
tests/scenarios/replace-set and the examples, each against
tests/transcripts/<folder>/<name>.out. ``KLPSIM_REGEN=1`` rewrites the
expected files (a rewrite is a change to review like any other).

The notes (``klpsim: note: ...``, model/notes.py) are the transcript's own
lines: ``--quiet-notes`` leaves exactly them out, and ``--dmesg`` never has
them.
"""

import os
from pathlib import Path

import pytest

from harness import ROOT, SELFTESTS, klpsim

TRANSCRIPTS = ROOT / "tests" / "transcripts"
NOTE = "klpsim: note: "
CASES = [
    ("replace-set", p, "replace-set")
    for p in sorted((ROOT / "tests" / "scenarios" / "replace-set").glob("*.sh"))
] + [("examples", ROOT / "examples" / "livepatch-at-work.sh", "replace-set")]


def _run(script: Path, profile: str, *flags: str) -> str:
    run = klpsim("run", "--kernel", profile, *flags, str(script))
    return f"status {run.status}\n--- stdout\n{run.out}--- stderr\n{run.err}"


@pytest.mark.parametrize(("folder", "script", "profile"), CASES, ids=[c[1].stem for c in CASES])
def test_transcript(folder: str, script: Path, profile: str):
    got = _run(script, profile)
    expected = TRANSCRIPTS / folder / f"{script.stem}.out"
    if os.environ.get("KLPSIM_REGEN"):
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(got)
        return
    assert expected.is_file(), f"{expected} is missing: run with KLPSIM_REGEN=1 and review it"
    assert got == expected.read_text()


ALL = (
    [(s, p) for _, s, p in CASES]
    + [(s, "7.1") for s in sorted(SELFTESTS.glob("test-*.sh"))]
    + [(s, "7.1") for s in sorted((ROOT / "tests" / "scenarios" / "bpf").glob("*.sh"))]
)


@pytest.mark.parametrize(("script", "profile"), ALL, ids=[s.stem for s, _ in ALL])
def test_quiet_notes_removes_the_notes_and_nothing_else(script: Path, profile: str):
    loud = _run(script, profile)
    quiet = _run(script, profile, "--quiet-notes")
    assert NOTE not in quiet
    assert "\n".join(x for x in loud.split("\n") if not x.startswith(NOTE)) == quiet
    dmesg = klpsim("run", "--kernel", profile, "--dmesg", str(script))
    assert NOTE not in dmesg.out + dmesg.err
