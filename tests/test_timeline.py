"""``klpsim run --timeline``: read from the event log, it agrees with the log."""

import re

from harness import ROOT, klpsim

KTHREAD = ROOT / "tests" / "scenarios" / "replace-set" / "kthread-holds-cumulative-replace.sh"


def timeline(out: str) -> list[str]:
    return out[out.index("timeline (") :].splitlines()


def log_time(out: str, text: str) -> str:
    """The timestamp of the first transcript log line that ends with *text*."""
    for line in out.splitlines():
        m = re.match(r"\[\s*(\d+\.\d{3})\d{3}\] (.*)", line)
        if m and m.group(2).endswith(text):
            return m.group(1)
    raise AssertionError(text)


def test_timeline_of_a_stalled_cumulative_replace():
    r = klpsim("run", "--timeline", str(KTHREAD))
    assert r.status == 0, r.err
    assert timeline(r.out) == [
        "timeline (simulated seconds; the script ended at 23.016):",
        "patches:",
        "  lp_a  set 0  0.001 loaded, 1.000 patched, 22.000 replaced by lp_c, 22.000 freed",
        "  lp_c  set 0  1.004 loaded, 22.000 patched, 22.013 disabled, 23.000 unpatched, "
        "23.000 freed",
        "transitions:",
        "   0.001 -  1.000    0.999 s  lp_a patching",
        "   1.004 - 22.000   20.996 s  lp_c patching",
        "      blocked 2.000 - 22.000 by 1001 kloader in cmdline_proc_show",
        "  22.013 - 23.000    0.987 s  lp_c unpatching",
    ]
    # the same times as the kernel log's
    assert log_time(r.out, "'lp_c': starting patching transition") == "1.004"
    assert log_time(r.out, "'lp_c': patching complete") == "22.000"
    assert log_time(r.out, "'lp_c': starting unpatching transition") == "22.013"


def test_timeline_with_dmesg_follows_the_log_and_leaves_it_alone():
    plain = klpsim("run", "--dmesg", str(KTHREAD))
    r = klpsim("run", "--dmesg", "--timeline", str(KTHREAD))
    assert r.out.startswith(plain.out)
    assert r.out[len(plain.out) :].startswith("timeline (")


def test_timeline_shows_forced_reversed_and_refused():
    forced = klpsim(
        "run", "--timeline", str(ROOT / "tests/scenarios/replace-set/force-marks-same-set-only.sh")
    )
    lines = timeline(forced.out)
    assert any("test_klp_callbacks_demo patching, forced at " in line for line in lines)
    assert any(
        line.startswith("  lp_a ") and "replaced by test_klp_callbacks_demo" in line
        for line in lines
    )
    rev = klpsim(
        "run",
        "--kernel",
        "7.1",
        "--timeline",
        str(ROOT / "tests/selftests/test-callbacks-09-busy-target-module.sh"),
    )
    assert "test_klp_callbacks_demo unpatching, reversed at 0.006" in rev.out
    refused = klpsim("run", "--timeline", str(ROOT / "examples/livepatch-at-work.sh"))
    (v1,) = [line for line in timeline(refused.out) if line.startswith("  lp_cmdline_v1 ")]
    assert v1.endswith("6.000 freed, 6.020 refused as set 1 (-EINVAL)")


def test_a_transition_still_running_at_the_end(tmp_path):
    text = KTHREAD.read_text().split("\nklp_blocking\n")[0]
    (tmp_path / "test_modules").symlink_to(KTHREAD.parent / "test_modules")
    (tmp_path / "s.sh").write_text(text)
    r = klpsim("run", "--timeline", str(tmp_path / "s.sh"))
    assert r.status == 0, r.err
    lines = timeline(r.out)
    assert lines[-2:] == [
        "   1.004 - 21.006   20.002 s  lp_c patching  (still running)",
        "      blocked 2.000 - 21.006 by 1001 kloader in cmdline_proc_show",
    ]
