"""tools/planvm.py without a VM: the cases, the guest scripts, reading the
guest's answers, and the predictions compared with them. The comparison
itself runs in .ci/vm-tier (``python -m klpsim.tools.planvm``)."""

from klpsim.tools.planvm import (
    SLEEPER,
    SLEEPER_C,
    PlanCase,
    diff_case,
    load_script,
    make_cases,
    parse_loads,
    pool_with_sleeper,
    setup_script,
)

POOL = pool_with_sleeper(5, "6.12")


def test_the_pool_has_livepatches_of_the_sleepers_functions():
    assert pool_with_sleeper(6, "6.12") != POOL
    sleepy = [n for n, t in POOL.items() if f'name = "{SLEEPER}"' in t]
    assert sleepy == [f"test_klp_fz_lps{i}" for i in range(1, 5)]
    assert 'old_name = "sk1"' in POOL["test_klp_fz_lps4"]
    rs = pool_with_sleeper(5, "replace-set")
    assert all("replace =" not in t for t in rs.values())
    assert 'MODULE_LICENSE("GPL");' in SLEEPER_C


def test_cases_are_reproducible_and_varied():
    cases = make_cases(POOL, 5, 60)
    assert cases == make_cases(POOL, 5, 60) and cases != make_cases(POOL, 6, 60)
    for c in cases:
        assert 0 <= len(c.host) <= 3 and 1 <= len(c.new) <= 2
        assert not set(c.host) & set(c.new)
        assert not {"test_klp_fz_tgt_a", "test_klp_fz_tgt_c"} <= set(c.targets)
    assert any(c.reader for c in cases) and any(c.kthread for c in cases)
    assert any(c.kprobe for c in cases) and any(not c.host for c in cases)


def test_setup_script_builds_the_state_then_collects():
    c = PlanCase("x", ["test_klp_fz_tgt_b"], ["test_klp_fz_lp3"], ["test_klp_fz_lp1"],
                 reader=True, kthread=True, kprobe="test_klp_fz_tgt_b:b1")  # fmt: skip
    lines = setup_script(c).splitlines()
    assert lines.index("insmod /klp/mods/test_klp_fz_tgt_b.ko || echo '@target-failed "
                       "test_klp_fz_tgt_b'") < lines.index("insmod /klp/mods/test_klp_fz_lp3.ko")  # fmt: skip
    assert f"insmod /klp/mods/{SLEEPER}.ko kthread=1 || echo '@target-failed {SLEEPER}'" in lines
    assert f"cat /proc/{SLEEPER}/sl1 > /dev/null 2>&1 &" in lines
    assert any("p:klpsim/planvm test_klp_fz_tgt_b:b1" in ln for ln in lines)
    assert lines[-1] == "sh /klp/klpsim-snapshot.sh --ko /klp/mods -o /tmp/snap.tar.gz --force"


def test_load_script_waits_and_reports():
    c = PlanCase("x", [], [], ["test_klp_fz_lp1", "test_klp_fz_lp2"])
    c.observed = ["vmlinux:cmdline_proc_show"]
    text = load_script(c)
    assert text.count("dmesg -C") == 2 and text.count("klpsim_walk /sys/kernel/livepatch") == 2
    assert "klpsim_settle 300 && echo '@settled 1' || echo '@settled 0'" in text


GUEST = """\
@load lp_a 0
@settled 1
@sysfs /sys/kernel/livepatch/lp_a/enabled: 1
@sysfs /sys/kernel/livepatch/lp_a/vmlinux/cmdline_proc_show,1/
@run vmlinux:cmdline_proc_show lp_a: this has been live patched
@log [  12.5] livepatch: enabling patch 'lp_a'
@log livepatch: signaling remaining tasks
@log random noise
@load lp_b 1
@settled 1
@log livepatch: 'lp_b': not compatible
"""


def test_parse_and_diff():
    real = parse_loads(GUEST)
    assert real[0] == {
        "accepted": True,
        "settled": True,
        "sysfs": ["/sys/kernel/livepatch/lp_a/enabled: 1",
                  "/sys/kernel/livepatch/lp_a/vmlinux/cmdline_proc_show,1/"],
        "running": {"vmlinux:cmdline_proc_show": "lp_a"},
        "log": ["livepatch: enabling patch 'lp_a'", "livepatch: signaling remaining tasks"],
        "signals": True,
    }  # fmt: skip
    assert (real[1]["accepted"], real[1]["signals"]) == (False, False)
    c = PlanCase("x", [], [], ["lp_a", "lp_b"])
    assert diff_case(c, real, real) == []
    model = [dict(real[0], settled=False, running={"vmlinux:cmdline_proc_show": None}), real[1]]
    assert diff_case(c, model, real) == [
        "x load 1 (lp_a): settled False predicted, True seen",
        "x load 1 (lp_a): vmlinux:cmdline_proc_show runs None predicted, lp_a seen",
    ]
    model = [dict(real[0], sysfs=["/sys/kernel/livepatch/lp_a/enabled: 0"]), real[1]]
    assert diff_case(c, model, real) == [
        "x load 1 (lp_a): sysfs: predicted only ['/sys/kernel/livepatch/lp_a/enabled: 0'], "
        "seen only ['/sys/kernel/livepatch/lp_a/enabled: 1', "
        "'/sys/kernel/livepatch/lp_a/vmlinux/cmdline_proc_show,1/']"
    ]
    assert diff_case(c, real[:1], real) == ["x: 1 loads predicted, 2 seen"]


def test_predictions_come_from_the_plan(tmp_path):
    from klpsim.artifacts.snapshot import read_snapshot
    from klpsim.tools.plan import plan
    from klpsim.tools.planvm import predicted
    from test_hostboot import collect, small_host
    from test_plan import toml

    snap = read_snapshot(collect(small_host(tmp_path), tmp_path))
    new = toml(tmp_path, "lp_rev", "vmlinux", ["version_proc_show"])
    c = PlanCase("x", [], ["lp_mini"], ["lp_rev"])
    c.observed = ["vmlinux:cmdline_proc_show", "vmlinux:version_proc_show"]
    (m,) = predicted(plan(snap, [new]), c)
    assert (m["accepted"], m["settled"], m["signals"]) == (True, True, True)
    assert m["running"] == {
        "vmlinux:cmdline_proc_show": None,
        "vmlinux:version_proc_show": "lp_rev",
    }
    assert "livepatch: signaling remaining tasks" in m["log"]
    assert "/sys/kernel/livepatch/lp_rev/transition: 0" in m["sysfs"]
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"], replace=False)
    (m,) = predicted(plan(snap, [new]), PlanCase("y", [], ["lp_mini"], ["lp_tgt"]))
    assert (m["settled"], m["signals"]) == (False, True)  # the kthread never leaves tgt_wait


def test_a_host_transition_that_never_ends_is_not_settled(tmp_path):
    from klpsim.artifacts.snapshot import read_snapshot
    from klpsim.tools.plan import plan
    from klpsim.tools.planvm import predicted
    from test_hostboot import collect, small_host
    from test_plan import toml

    h = small_host(tmp_path, transition=1)
    # a kthread asleep in the original cmdline_proc_show: lp_mini never completes
    h.task(61, 61, "kstuck", kthread=True, stack=["cmdline_proc_show+0x10/0x40"], patch_state=0)
    h.task(50, 50, "reader", stack=["schedule+0x20/0x40"], patch_state=1)
    h.task(1, 1, "init", stack=["schedule+0x1/0x40"], patch_state=1)
    h.task(60, 60, "kwait", kthread=True, stack=["tgt_wait+0x8/0x40 [tgt]"], patch_state=1)
    snap = read_snapshot(collect(h, tmp_path))
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"], replace=False)
    p = plan(snap, [new])
    (pl,) = p.loads
    assert (pl.load.accepted, pl.load.reason) == (False, "busy: lp_mini is in transition")
    (m,) = predicted(p, PlanCase("x", [], ["lp_mini"], ["lp_tgt"]))
    assert (m["accepted"], m["settled"], m["signals"], m["log"]) == (False, False, False, [])
    assert "/sys/kernel/livepatch/lp_mini/transition: 1" in m["sysfs"]


def test_a_stalled_replace_already_runs_its_nops(tmp_path):
    """planvm replace-set seed 48210 case 4: the replace stalls on a kthread,
    its nops run for the reads (forked from the switched shell)."""
    from klpsim.artifacts.snapshot import read_snapshot
    from klpsim.tools.plan import plan
    from klpsim.tools.planvm import predicted
    from test_hostboot import collect, small_host
    from test_plan import toml

    snap = read_snapshot(collect(small_host(tmp_path), tmp_path))
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"])
    c = PlanCase("x", [], ["lp_mini"], ["lp_tgt"])
    c.observed = ["vmlinux:cmdline_proc_show"]
    (m,) = predicted(plan(snap, [new]), c)
    assert (m["accepted"], m["settled"]) == (True, False)
    assert "/sys/kernel/livepatch/lp_mini/enabled: 1" in m["sysfs"]
    assert m["running"] == {"vmlinux:cmdline_proc_show": None}


class _Guest:
    """The guest side of one planvm case: canned answers."""

    def __init__(self, snapshot: bytes):
        self.snapshot = snapshot

    def put(self, path, data):
        pass

    def run(self, cmd, timeout=None):
        return 0, "@host lp 0\n"

    def request(self, line, timeout=None):
        return 0, self.snapshot


def test_a_snapshot_that_does_not_read_is_a_difference_of_its_case(tmp_path):
    from klpsim.tools.planvm import _case

    c = PlanCase("case_1_0", [], [], ["lp_x"])
    seen = dict.fromkeys(["s in the state and collector", "s copying snapshots"], 0)
    diffs = _case(_Guest(b"\x1f\x8b\x08 cut short"), c, {}, tmp_path, seen, [])
    assert len(diffs) == 1
    assert diffs[0].startswith(f"case_1_0: the snapshot does not read: {tmp_path}/case_1_0.tar.gz")
