""".ci/vm-tier splits tests/real by kernel (``pytest tests/real --kernel K``,
tests/real/conftest.py) to run the kernels side by side: every test must land
in exactly one job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTIONS = ("6.1", "6.12", "replace-set", "none")


def collected(*args: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/real", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return [ln for ln in r.stdout.splitlines() if "::" in ln]


def test_every_real_test_is_in_exactly_one_kernel_job():
    everything = collected()
    parts = {k: collected("--kernel", k) for k in SELECTIONS}
    assert all(parts.values())
    assert sorted(t for p in parts.values() for t in p) == sorted(everything)
    # no test lands in another kernel's job
    for k, tests in parts.items():
        for other in set(SELECTIONS) - {k, "none"}:
            token = re.compile(rf"[\[-]{re.escape(other)}[\]-]")
            assert not [t for t in tests if token.search(t)], (k, other)


def test_the_vm_tier_runs_every_selection():
    text = (ROOT / ".ci/vm-tier").read_text()
    jobs = re.findall(r'^job "tests/real [^"]+" real (.+)$', text, re.M)
    chosen = [k for line in jobs for k in re.findall(r"--kernel (\S+)", line)]
    assert sorted(chosen) == sorted(SELECTIONS)


def test_an_unknown_kernel_is_a_usage_error():
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/real", "--kernel", "5.10"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 4
    assert "--kernel 5.10: not one of 6.1, 6.12, replace-set, none" in r.stderr
