"""Scenario tests per profile: tests/scenarios/<profile>/*.sh.

Each script ends in a check_result block. The script must pass it, the
filtered ``--dmesg`` output must equal it, and ``--check`` must find the
invariants intact -- except where a profile is known to break them.
"""

from pathlib import Path

import pytest

from harness import ROOT, SELFTESTS, after_last_canary, expected_block, klpsim
from klpsim.livepatch.profiles import all_profiles
from klpsim.scenario.helpers import filter_check_result

SCENARIOS = ROOT / "tests" / "scenarios"
PROFILES = set(all_profiles())
# tests/scenarios/<profile>/*.sh; other folders there have their own tests.
CASES = sorted(p for p in SCENARIOS.glob("*/*.sh") if p.parent.name in PROFILES)
# Scripts that show a profile breaking the consistency model: a nop of the
# new patch hides another patch's function while the transition runs.
BREAKS_INVARIANTS = {
    "replaceable/petr-counterexample.sh",
    "replaceable/found-by-hypothesis.sh",
    "replace-tag/tags-replace-their-own-and-tag-0.sh",
    "replace-set-012/sets-0-1-2plus.sh",
}


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("script", CASES, ids=case_id)
def test_scenario_log(script):
    r = klpsim("run", "--kernel", script.parent.name, "--dmesg", str(script))
    assert r.status == 0, r.err
    result = filter_check_result(after_last_canary(r.out.splitlines()))
    assert "\n".join(result) == expected_block(script)


@pytest.mark.parametrize("script", CASES, ids=case_id)
def test_scenario_check(script):
    r = klpsim("run", "--check", "--kernel", script.parent.name, str(script))
    if case_id(script) in BREAKS_INVARIANTS:
        assert r.status == 3
    else:
        assert r.status == 0, r.err


def test_check_reports_petr_counterexample():
    script = SCENARIOS / "replaceable" / "petr-counterexample.sh"
    r = klpsim("run", "--check", "--kernel", "replaceable", str(script))
    (line,) = [x for x in r.err.splitlines() if x.startswith("klpsim: check:")]
    assert f"{script}:23: " in line
    assert "per-task-consistency: completing the transition:" in line
    assert "cmdline_proc_show changed from the original to lp1:livepatch_cmdline_proc_show" in line
    assert line.endswith("[functions: cmdline_proc_show]")


def test_same_loads_refused_under_replace_set():
    script = SCENARIOS / "replace-set" / "petr-counterexample-refused.sh"
    r = klpsim("run", "--dmesg", str(script))
    assert (
        "livepatch: Livepatch patch (lp2) is not compatible with the already installed "
        "livepatches." in r.out.splitlines()
    )


# The selftests that are mainline's: on replace-set there is no non-replace
# mode, no replace attribute and no stack_order, so they fail there (status 1)
# exactly where their check_result or sysfs checks expect mainline.
MAINLINE_ONLY = {
    "test-callbacks-10-multiple-livepatches.sh",
    "test-callbacks-11-atomic-replace.sh",
    "test-livepatch-02-multiple-livepatches.sh",
    "test-livepatch-03-atomic-replace-livepatch.sh",
    "test-sysfs-01-sysfs-test.sh",
    "test-sysfs-03-sysfs-test-replace-enabled.sh",
    "test-sysfs-04-sysfs-test-replace-disabled.sh",
    "test-sysfs-05-sysfs-test-stack-order-value.sh",
}


@pytest.mark.parametrize("profile", ["7.1", "replace-set"])
def test_check_finds_nothing_in_the_selftests(profile):
    for script in sorted(SELFTESTS.glob("test-*.sh")):
        r = klpsim("run", "--check", "--kernel", profile, str(script))
        assert "klpsim: check:" not in r.err, (script.name, r.err)
        if profile == "replace-set" and script.name in MAINLINE_ONLY:
            assert r.status == 1, (script.name, r.err)
            assert r.err.splitlines()[-1].startswith("ERROR: "), (script.name, r.err)
        else:
            assert r.status == 0, (script.name, r.err)


def test_log_die_and_skip_take_only_their_first_word(tmp_path):
    # functions.sh: log() { echo "$1" > /dev/kmsg; }, and die and skip log
    # "ERROR: $1" / "SKIP: $1": further words are dropped on a test machine.
    for line, status, dmesg, err in [
        ("log klpsim: done\n", 0, "klpsim:", ""),
        ("log 'klpsim: done'\n", 0, "klpsim: done", ""),
        ("die not loaded\n", 1, "ERROR: not", "ERROR: not\n"),
        ("skip no kprobes\n", 1, "SKIP: no", "SKIP: no\n"),  # klpsim run: 1, any failure
    ]:
        path = tmp_path / "s.sh"
        path.write_text(line)
        r = klpsim("run", "--kernel", "7.1", "--dmesg", str(path))
        assert (r.status, r.out.splitlines()[-1], r.err) == (status, dmesg, err), line
