"""The kernel's 32 livepatch selftests, as klpsim scenario scripts.

Each script ends in the check_result block of its kselftest case. The
script must pass its own check_result, and the kernel log printed by
``klpsim run --dmesg``, filtered as functions.sh filters it, must equal
that block byte for byte.
"""

import pytest

from harness import SELFTESTS, after_last_canary, expected_block, klpsim
from klpsim.scenario.helpers import filter_check_result

SCRIPTS = sorted(SELFTESTS.glob("test-*.sh"))


def test_all_32_cases_are_here():
    assert len(SCRIPTS) == 32
    counts: dict[str, int] = {}
    for s in SCRIPTS:
        name = "-".join(w for w in s.name.split("-")[:3] if not w.isdigit())
        name = name if name.startswith("test-shadow") else "-".join(name.split("-")[:2])
        counts[name] = counts.get(name, 0) + 1
    assert counts == {
        "test-livepatch": 5,
        "test-callbacks": 11,
        "test-shadow-vars": 1,
        "test-state": 4,
        "test-ftrace": 3,
        "test-sysfs": 5,
        "test-syscall": 1,
        "test-kprobe": 2,
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_selftest_dmesg_matches_kernel_block(script):
    r = klpsim("run", "--kernel", "7.1", "--dmesg", str(script))
    assert r.status == 0, r.err
    result = filter_check_result(after_last_canary(r.out.splitlines()))
    assert "\n".join(result) == expected_block(script)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_selftest_transcript_says_ok(script):
    r = klpsim("run", "--kernel", "7.1", str(script))
    assert r.status == 0, r.err
    assert r.out.rstrip().endswith("ok")
