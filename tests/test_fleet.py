"""klpsim plan --fleet: synthetic hosts written by the model read back as
the same state; the fleet report groups hosts by outcome and reason, and
does not depend on the pool that planned it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import klpsim
from klpsim.artifacts.snapshot import read_snapshot
from klpsim.artifacts.snapshot_write import write_snapshot
from klpsim.session import Session
from klpsim.tools.fleet import (
    SYNTHETIC_NEW,
    fleet_hosts,
    fleet_json,
    plan_fleet,
    render_fleet,
    synthetic_fleet,
    synthetic_host,
)
from klpsim.tools.plan import _sysfs


def _tasks(session: Session, pids: set[int] | None = None) -> dict[int, tuple]:
    return {
        t.pid: (t.comm, t.is_kthread, t.patch_state, t.patch_pending, [s.name for s in t.stack])
        for t in session.kernel.sched.tasks.values()
        if pids is None or t.pid in pids
    }


def _func_stacks(session: Session) -> dict[str, list[str]]:
    klp = session.klp
    return {
        f"{o.name}:{f.old_name}": [p.name for p in klp.patches if any(
            g is f for oo in p.objs for g in oo.funcs)]
        for p in klp.patches for o in p.objs for f in o.funcs
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_a_written_snapshot_reads_back_as_the_same_state(tmp_path, seed):
    host = synthetic_host(seed)
    path = write_snapshot(host.system, tmp_path / "h.tar.gz")
    back = Session.from_snapshot(read_snapshot(path))
    assert back.host is not None
    assert [p.name for p in back.klp.patches] == [p.name for p in host.klp.patches]
    assert _sysfs(back) == _sysfs(host)
    tp = host.klp.transition_patch
    assert (back.klp.transition_patch and back.klp.transition_patch.name) == (tp and tp.name)
    assert back.klp.target_state == host.klp.target_state
    old = _tasks(host)
    unknown = set(back.host.unknown_stacks)
    # A frame in a livepatch's new function reads back as an unknown stack:
    # the model writes no .ko (the reader needs it to resolve those names).
    in_lp = {pid for pid, t in old.items() if any(n.startswith("livepatch_") for n in t[4])}
    assert unknown == in_lp
    new = _tasks(back, set(old) - in_lp)
    shell = back.kernel.sched.current.pid  # the model's own shell moved off the host's pids
    assert shell not in old
    assert new == {pid: t for pid, t in old.items() if pid not in in_lp}
    for pid in in_lp:
        assert _tasks(back, {pid})[pid][:3] == old[pid][:3]


def test_the_writer_covers_every_kind_of_host(tmp_path):
    """Over the seeds the tests use: hosts with no patch, stacked patches,
    a transition left running, and tasks asleep in patched functions."""
    hosts = [synthetic_host(s) for s in range(12)]
    assert any(not h.klp.patches for h in hosts)
    assert any(len(h.klp.patches) >= 2 for h in hosts)
    assert any(h.klp.transition_patch is not None for h in hosts)
    assert any(
        any(s.name.startswith("livepatch_") for t in h.kernel.sched.tasks.values() for s in t.stack)
        for h in hosts
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("fleet")
    hosts = d / "hosts"
    synthetic_fleet(hosts, 30, seed=1)
    (hosts / "cut.tar.gz").write_bytes((hosts / "host-0000.tar.gz").read_bytes()[:300])
    (hosts / "notes.txt").write_text("not a snapshot\n")
    new = d / "lp_new.toml"
    new.write_text(SYNTHETIC_NEW)
    return hosts, str(new)


def test_jobs_1_and_2_give_the_same_report(fleet):
    hosts, new = fleet
    paths = fleet_hosts(str(hosts))
    one = fleet_json(str(hosts), [new], plan_fleet(paths, [new], jobs=1))
    two = fleet_json(str(hosts), [new], plan_fleet(paths, [new], jobs=2))
    three = fleet_json(str(hosts), [new], plan_fleet(paths, [new], jobs=3))
    assert one == two == three
    assert one["hosts"] == 32
    assert sum(len(g["hosts"]) for g in one["groups"]) == 32


def test_the_report_groups_by_outcome_and_reason(fleet):
    hosts, new = fleet
    r = klpsim("plan", "--fleet", str(hosts), new, "--json")
    assert r.status == 1 and r.err == "", r.err
    report = json.loads(r.out)
    counts = report["counts"]
    # the seeded fleet has every outcome but silent reverts (one replace set 0 patch)
    assert counts["accepts"] and counts["refuses"] and counts["stalls"]
    assert counts["unreadable"] == 2
    groups = {(g["outcome"], json.dumps(g["reason"], sort_keys=True)): g for g in report["groups"]}
    assert len(groups) == len(report["groups"])  # one group per outcome and reason
    for g in report["groups"]:
        if g["outcome"] == "refuses":
            assert g["reason"]["rule"] == "set-function" and g["reason"]["other"]
            assert g["reason"]["function"] in g["text"]
        if g["outcome"] == "stalls":
            assert g["reason"]["on"] and g["reason"]["outcome"] in ("stalls", "may-stall")
    unreadable = [g for g in report["groups"] if g["outcome"] == "unreadable"]
    assert len(unreadable) == 1
    why = unreadable[0]["why"]
    assert why["cut.tar.gz"].startswith(f"{hosts / 'cut.tar.gz'}: truncated or corrupt archive")
    assert why["notes.txt"] == (
        f"{hosts / 'notes.txt'}: not a tar archive (plain, gzip, bzip2 or xz), or a truncated one"
    )
    # each refusing host's own plan says the same
    g = next(g for g in report["groups"] if g["outcome"] == "refuses")
    r1 = klpsim("plan", str(hosts / g["hosts"][0]), new, "--json")
    load = json.loads(r1.out)["loads"][0]
    assert not load["accepted"] and load["rule"] == g["reason"]["rule"]
    assert load["other"] == g["reason"]["other"] and load["function"] == g["reason"]["function"]
    human = klpsim("plan", "--fleet", str(hosts), new, "--jobs", "2")
    assert human.status == 1
    lines = human.out.splitlines()
    assert lines[1] == (
        f"  {counts['accepts']} accepts, {counts['refuses']} refuses, {counts['stalls']} stalls, "
        f"0 silent-revert, 2 unreadable"
    )
    assert f"    cut.tar.gz: {why['cut.tar.gz']}" in lines
    assert lines[-1] == f"verdict: FAIL: {counts['accepts']} of 32 host(s) accept"


def test_a_fleet_that_accepts_exits_0(tmp_path):
    """Hosts with no transition running and every stack known accept a
    patch of a function nobody patches, in a set of its own."""
    (tmp_path / "h").mkdir()
    n = 0
    for seed in range(40):
        h = synthetic_host(seed)
        frames = [s.name for t in h.kernel.sched.tasks.values() for s in t.stack]
        if h.klp.transition_patch is None and not any(f.startswith("livepatch_") for f in frames):
            write_snapshot(h.system, tmp_path / "h" / f"host-{seed}.tar.gz")
            n += 1
    assert n >= 3
    new = tmp_path / "lp_other.toml"
    new.write_text(
        'livepatch = true\nreplace_set = 7\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [ { old_name = "uptime_proc_show" } ]\n'
    )
    r = klpsim("plan", "--fleet", str(tmp_path / "h"), str(new))
    assert r.status == 0, r.out
    assert r.out.splitlines()[-1] == f"verdict: OK: {n} of {n} host(s) accept"


def _one_line(r) -> str:
    assert r.status == 2 and r.out == "", (r.out, r.err)
    assert len(r.err.splitlines()) == 1 and "Traceback" not in r.err, r.err
    return r.err.rstrip("\n")


def test_bad_fleet_input_is_one_line(tmp_path, fleet):
    hosts, new = fleet
    assert _one_line(klpsim("plan", "--fleet", str(tmp_path / "nope"), new)) == (
        f"klpsim: {tmp_path / 'nope'}: no such directory"
    )
    (tmp_path / "empty").mkdir()
    assert _one_line(klpsim("plan", "--fleet", str(tmp_path / "empty"), new)) == (
        f"klpsim: {tmp_path / 'empty'}: no snapshot in it"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("livepatch = true\nreplce = 1\n")
    assert _one_line(klpsim("plan", "--fleet", str(hosts), str(bad))) == (
        f"klpsim: {bad}: key 'replce': unknown key"
    )
    assert _one_line(klpsim("plan", "--fleet", str(hosts), new, "--jobs", "0")) == (
        "klpsim: --jobs 0: must be at least 1"
    )
    snap = hosts / "host-0001.tar.gz"
    assert _one_line(klpsim("plan", str(snap), new, "--jobs", "2")) == (
        "klpsim: --jobs and --ray go with --fleet DIR"
    )


def _lp(funcs: list[str], replace: bool) -> str:
    body = ", ".join(f'{{ old_name = "{f}" }}' for f in funcs)
    return (
        f"livepatch = true\nreplace = {'true' if replace else 'false'}\n"
        f'[[objects]]\nname = "vmlinux"\nfuncs = [ {body} ]\n'
    )


def test_an_atomic_replace_over_another_patch_is_a_silent_revert_group(tmp_path):
    """On 6.12 (no sets): a replace=1 patch reverts the functions of the
    host's other patch it does not carry; check calls that silent."""
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    for name, funcs in (("a", ["version_proc_show"]), ("b", ["loadavg_proc_show"])):
        s = Session("6.12", definitions={"lp_old": _lp(funcs, False)})
        s.run("insmod test_modules/lp_old.ko\nsleep 5\n")
        write_snapshot(s.system, hosts / f"{name}.tar.gz")
    new = tmp_path / "lp_new.toml"
    new.write_text(_lp(["cmdline_proc_show"], True))
    r = klpsim("plan", "--fleet", str(hosts), str(new), "--json")
    assert r.status == 1, r.err
    report = json.loads(r.out)
    assert report["counts"]["silent-revert"] == 2
    assert [(g["outcome"], g["hosts"], g["reason"]) for g in report["groups"]] == [
        (
            "silent-revert",
            ["b.tar.gz"],
            {"patch": "lp_new", "reverts": "vmlinux:loadavg_proc_show,0 of lp_old"},
        ),
        (
            "silent-revert",
            ["a.tar.gz"],
            {"patch": "lp_new", "reverts": "vmlinux:version_proc_show,0 of lp_old"},
        ),
    ]


def test_a_crash_on_one_host_is_that_hosts_error(fleet, monkeypatch):
    """klpsim failing on one snapshot (a bug) is reported for that host; the
    rest of the fleet is still planned."""
    import klpsim.tools.fleet as fleet_mod

    hosts, new = fleet
    real_plan = fleet_mod.plan

    def plan(snap, files, kernel=None):
        if snap.source.endswith("host-0003.tar.gz"):
            raise KeyError("vmlinux:gone")
        return real_plan(snap, files, kernel)

    monkeypatch.setattr(fleet_mod, "plan", plan)
    paths = fleet_hosts(str(hosts))
    out = fleet_mod.plan_fleet(paths, [new])
    assert len(out) == 32
    (err,) = [h for h in out if h.outcome == "error"]
    assert (err.host, err.text) == ("host-0003.tar.gz", "klpsim failed: KeyError: 'vmlinux:gone'")
    report = fleet_json(str(hosts), [new], out)
    assert report["counts"]["error"] == 1 and not report["ok"]
    (g,) = [g for g in report["groups"] if g["outcome"] == "error"]
    assert g["why"] == {"host-0003.tar.gz": err.text}
    text = render_fleet(report)
    assert ", 1 error\n" in text
    assert "error: 1 host(s): klpsim failed (a bug: please report it)" in text


def test_a_long_run_shows_progress(tmp_path):
    hosts = tmp_path / "hosts"
    synthetic_fleet(hosts, 120, seed=3)
    new = tmp_path / "lp_new.toml"
    new.write_text(SYNTHETIC_NEW)
    r = klpsim("plan", "--fleet", str(hosts), str(new), "--jobs", "2")
    lines = r.err.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [
        "klpsim: plan --fleet: [50/120] hosts planned",
        "klpsim: plan --fleet: [100/120] hosts planned",
        "klpsim: plan --fleet: [120/120] hosts planned",
    ]
    assert "about" in lines[1]  # the time left, once a round has been timed
    assert r.out.startswith(f"fleet {hosts}: 120 host(s)")
