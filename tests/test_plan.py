"""``klpsim plan SNAP NEW...``: loading new livepatches on a snapshot's host,
predicted by the model booted into the snapshot (tools/plan.py). The host is
test_hostboot.py's small_host: lp_mini (from its .ko: cmdline_proc_show,
version_proc_show, nfs:nfs_permission; state 5 v2), task 50 asleep in
lp_mini's cmdline_proc_show, kthread 60 asleep in tgt:tgt_wait, a kprobe on
tgt_wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import klpsim
from test_hostboot import collect, small_host
from test_snapshot import _sos_files, _tar

STATE = "\n[[states]]\nid = 5\nversion = 2\n"


def toml(tmp_path: Path, name: str, obj: str, funcs: list[str], replace: bool = True,
         state: bool = True) -> str:  # fmt: skip
    body = f"livepatch = true\nreplace = {str(replace).lower()}\n\n[[objects]]\n"
    body += f'name = "{obj}"\nfuncs = [' + ", ".join(f'{{ old_name = "{f}" }}' for f in funcs)
    body += "]\n" + (STATE if state else "")
    path = tmp_path / f"{name}.toml"
    path.write_text(body)
    return str(path)


@pytest.fixture
def snap(tmp_path) -> Path:
    return collect(small_host(tmp_path), tmp_path)


def plan_json(*argv: str) -> tuple[int, dict]:
    r = klpsim("plan", *argv, "--json")
    assert r.err == "", r.err
    return r.status, json.loads(r.out)


def test_a_replace_reverts_and_waits_for_a_sleeping_task(tmp_path, snap):
    new = toml(tmp_path, "lp_rev", "vmlinux", ["version_proc_show"])
    status, p = plan_json(str(snap), new)
    assert status == 1  # cmdline_proc_show is silently reverted: lp_mini is another patch
    assert (p["kernel"], p["ok"]) == ("6.12", False)
    assert [h["name"] for h in p["host"]["patches"]] == ["lp_mini"]
    (load,) = p["loads"]
    assert load["accepted"] and load["replaces"] == ["lp_mini"]
    changes = {c["function"]: c["change"] for c in load["functions"]}
    assert changes["vmlinux:cmdline_proc_show,0"] == "reverted"
    assert changes["vmlinux:version_proc_show,0"] == "new"
    assert load["silent_reverts"] == ["vmlinux:cmdline_proc_show,0"]
    assert load["modules_left"] == ["lp_mini"]
    t = load["transition"]
    assert t["blocking"] == [
        {"pid": 50, "comm": "reader", "kthread": False, "why": "sleeping",
         "function": "cmdline_proc_show", "code": "lp_mini:livepatch_cmdline_proc_show",
         "nop": True},
    ]  # fmt: skip
    assert (t["outcome"], t["signals"], t["left"]) == ("completes-after-signals", True, [])
    assert "livepatch: signaling remaining tasks" in load["log"]
    assert "livepatch: 'lp_rev': patching complete" in load["log"]
    assert "/sys/kernel/livepatch/lp_rev/enabled: 1" in load["sysfs"]
    assert not any(line.startswith("/sys/kernel/livepatch/lp_mini") for line in load["sysfs"])


def test_a_kthread_asleep_in_the_new_function_stalls_it(tmp_path, snap):
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"], replace=False)
    status, p = plan_json(str(snap), new)
    assert status == 1
    (load,) = p["loads"]
    assert load["accepted"] and load["replaces"] == [] and load["replaces_when_complete"] == []
    t = load["transition"]
    assert t["outcome"] == "stalls"
    assert [(b["pid"], b["kthread"], b["function"], b["nop"]) for b in t["left"]] == [
        (60, True, "tgt:tgt_wait", False)
    ]
    # the kprobe on tgt_wait's entry still fires: it reports tgt_wait, the patch runs
    (a,) = load["attachments"]
    assert (a["kind"], a["before"], a["after"]) == ("kprobe", "active", "active")
    assert a["note"] == "reports tgt_wait; calls run lp_tgt:livepatch_tgt_wait"


def test_a_replace_that_stalls_replaces_only_when_it_completes(tmp_path, snap):
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"])
    _, p = plan_json(str(snap), new)
    (load,) = p["loads"]
    assert load["transition"]["outcome"] == "stalls"
    assert (load["replaces"], load["replaces_when_complete"]) == ([], ["lp_mini"])
    # lp_mini stays, but every task that switched (the shell, all it forks)
    # runs lp_tgt's nops: the original (planvm replace-set seed 48210 case 4)
    changes = {c["function"]: c["change"] for c in load["functions"]}
    assert changes["vmlinux:cmdline_proc_show,0"] == "reverted"
    assert load["silent_reverts"] == ["vmlinux:cmdline_proc_show,0", "vmlinux:version_proc_show,1"]
    r = klpsim("plan", str(snap), new)
    assert "load 1: lp_tgt: accepted, replaces lp_mini once its transition completes" in r.out
    assert "    60 kwait (kthread): sleeping in tgt:tgt_wait: patched tgt:tgt_wait" in r.out
    assert "  outcome: STALLS: the transition never completes" in r.out


def test_refused_with_the_rule_and_the_other_patch(tmp_path, snap):
    new = toml(tmp_path, "lp_nostate", "vmlinux", ["version_proc_show"], state=False)
    r = klpsim("plan", str(snap), new)
    assert r.status == 1
    assert (
        "load 1: lp_nostate: REFUSED (-EINVAL): state-missing: a replacing patch without a "
        "state of the patch it replaces: state id 5, in lp_mini" in r.out
    )
    assert r.out.rstrip().splitlines()[-1] == (
        "verdict: FAIL: 0 of 1 loads accepted, 0 transition(s) that may not complete, "
        "0 silent revert(s), 2 unknown(s)"
    )


def test_an_unknown_stack_may_stall(tmp_path):
    h = small_host(tmp_path)
    h.task(70, 70, "secretd", kthread=True, stack=None)
    snap = collect(h, tmp_path)
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"], replace=False)
    h.task(60, 60, "kwait", kthread=True, stack=["schedule+0x20/0x40"])
    snap = collect(h, tmp_path, "s2.tar.gz")
    _, p = plan_json(str(snap), new)
    t = p["loads"][0]["transition"]
    assert t["outcome"] == "may-stall"
    assert [(b["pid"], b["why"]) for b in t["left"]] == [(70, "unknown-stack")]
    assert any(u.startswith("stacks of 1 of 4 tasks: ") for u in p["unknown"]), p["unknown"]


def test_human_output_sections(tmp_path, snap):
    new = toml(tmp_path, "lp_rev", "vmlinux", ["version_proc_show"])
    r = klpsim("plan", str(snap), new)
    lines = r.out.splitlines()
    assert lines[0] == (
        f"host {snap}: kernel 6.12 (sysfs: the patches have replace (6.11+) but no stack_order)"
    )
    assert "    lp_mini                  replace 0, replace_set 0, 3 function(s) (.ko)" in lines
    assert "load 1: lp_rev: accepted, replaces lp_mini" in lines
    assert (
        "    reverted   vmlinux:cmdline_proc_show,0 to the original (was lp_mini): "
        "SILENT REVERT of another team's function" in lines
    )
    assert "  modules left loaded (replaced; rmmod frees them): lp_mini" in lines
    assert "  outcome: completes after signals (klp_send_signals(), 15 s)" in lines
    assert "    livepatch: 'lp_rev': patching complete" in lines
    assert "    /sys/kernel/livepatch/lp_rev/vmlinux/version_proc_show,1/" in lines


def test_a_sosreport_plan_names_what_it_could_not_know(tmp_path):
    # foo,1/.keep: the tar holds the function's directory
    sos = _tar(tmp_path / "sosreport-web1-2026-06-01-abcdef.tar.xz", _sos_files(), "w:xz")
    new = toml(tmp_path, "lp_foo", "vmlinux", ["foo"], state=False)
    status, p = plan_json(str(sos), new)
    assert p["host"]["patches"][0]["from_ko"] is False
    assert any(u.startswith("kpatch_5_14_0_427_1_1: no .ko in the snapshot") for u in p["unknown"])
    assert ".ko files: sosreport does not collect them" in p["unknown"]
    (load,) = p["loads"]
    assert load["accepted"] and load["replaces"] == ["kpatch_5_14_0_427_1_1"]
    assert [c["change"] for c in load["functions"]] == ["re-patched"]
    t = load["transition"]  # no task has foo on its stack: the idle tasks switch, it completes
    assert (t["blocking"], t["outcome"], t["signals"]) == ([], "completes", False)
    assert status == 0 and p["ok"]
    assert any("patch_state of every task" in u for u in p["unknown"])


def one_line(r) -> str:
    assert r.status == 2 and r.out == "", (r.out, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    return lines[0]


def test_bad_snapshots_are_one_line(tmp_path, snap):
    import tarfile

    new = toml(tmp_path, "lp_rev", "vmlinux", ["version_proc_show"])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(snap.read_bytes()[: snap.stat().st_size // 2])
    assert one_line(klpsim("plan", str(cut), new)).startswith(
        f"klpsim: {cut}: truncated or corrupt archive"
    )
    missing = tmp_path / "nope.tar.gz"
    assert one_line(klpsim("plan", str(missing), new)) == (
        f"klpsim: {missing}: No such file or directory"
    )
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(snap) as src, tarfile.open(edited, "w:gz") as dst:
        for m in src.getmembers():
            if not m.name.endswith("/proc/kallsyms"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    assert one_line(klpsim("plan", str(edited), new)) == (
        f"klpsim: {edited}: MANIFEST lists /proc/kallsyms as collected but the snapshot "
        "lacks it (truncated or edited)"
    )
    foreign = _tar(tmp_path / "photos.tar.gz", {"photos/a.jpg": b"\xff\xd8"})
    assert one_line(klpsim("plan", str(foreign), new)) == (
        f"klpsim: {foreign}: not a klpsim snapshot, sosreport or supportconfig "
        "(no MANIFEST, sos_commands/ or basic-environment.txt)"
    )
    sos = _tar(tmp_path / "sosreport-web1.tar.xz", _sos_files(with_livepatch=False), "w:xz")
    assert one_line(klpsim("plan", str(sos), new)) == (
        f"klpsim: {sos}: holds no /sys/kernel/livepatch although livepatch modules are "
        "loaded (kpatch_5_14_0_427_1_1)"
    )


def test_a_snapshot_without_kallsyms_is_one_line(tmp_path):
    h = small_host(tmp_path)
    (h.root / "proc/kallsyms").unlink()
    snap = collect(h, tmp_path)
    new = toml(tmp_path, "lp_rev", "vmlinux", ["version_proc_show"])
    assert one_line(klpsim("plan", str(snap), new)) == (
        f"klpsim: {snap}: no kallsyms (/proc/kallsyms: not on the host): the model needs "
        "the host's symbol table"
    )


def test_bad_new_modules_and_options_are_one_line(tmp_path, snap):
    bad = tmp_path / "bad.toml"
    bad.write_text("livepatch = true\nreplce = 1\n")
    assert one_line(klpsim("plan", str(snap), str(bad))) == (
        f"klpsim: {bad}: key 'replce': unknown key"
    )
    assert one_line(klpsim("plan", str(snap), str(tmp_path / "none.ko"))).startswith(
        f"klpsim: {tmp_path / 'none.ko'}: "
    )
    target = tmp_path / "tgt2.toml"
    target.write_text('functions = ["t2_show"]\n')
    assert one_line(klpsim("plan", str(snap), str(target))) == (
        f"klpsim: {target}: no livepatch among the files"
    )
    new = toml(tmp_path, "lp_rev", "vmlinux", ["version_proc_show"])
    assert one_line(klpsim("plan", str(snap), new, "--kernel", "9.9")) == (
        "klpsim: unknown kernel profile '9.9' (see 'klpsim kernels')"
    )
    assert one_line(klpsim("plan", str(snap))).startswith("klpsim plan: error: ")


def test_a_kprobe_inside_a_body_the_patch_bypasses_goes_silent(tmp_path):
    h = small_host(tmp_path)
    h.write("sys/kernel/debug/kprobes/list", "ffffffffc0a00010  k  tgt_wait+0x10  tgt\n")
    h.task(60, 60, "kwait", kthread=True, stack=["schedule+0x20/0x40"])  # not in tgt_wait
    snap = collect(h, tmp_path)
    new = toml(tmp_path, "lp_tgt", "tgt", ["tgt_wait"], replace=False)
    status, p = plan_json(str(snap), new)
    assert p["host"]["kprobes"] == ["p:klpsim/snap_0 tgt:tgt_wait+16"]
    (load,) = p["loads"]
    assert load["transition"]["outcome"] == "completes" and status == 0
    (a,) = load["attachments"]
    assert (a["name"], a["function"], a["before"], a["after"]) == (
        "klpsim/snap_0",
        "tgt:tgt_wait+0x10",
        "active",
        "silent",
    )
    assert a["note"] == "calls of tgt_wait run lp_tgt:livepatch_tgt_wait, not this body"
