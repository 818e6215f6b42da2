"""tools/checkvm.py without a VM: the sets, the guest script, reading the
guest's answers, and the predictions from check's loader. The comparison
itself runs in .ci/vm-tier (``python -m klpsim.tools.checkvm``)."""

from klpsim.kernel.vmlinux import PROC_SHOW
from klpsim.tools.checkvm import CheckSet, _diff, guest_script, make_sets, parse_guest, predict
from klpsim.tools.fuzz import module_pool

POOL = module_pool(5)


def test_sets_are_reproducible_and_never_load_both_clashing_targets():
    sets = make_sets(POOL, 5, 40)
    assert sets == make_sets(POOL, 5, 40)
    assert sets != make_sets(POOL, 6, 40)
    for s in sets:
        assert 2 <= len(s.patches) <= 5 and len(set(s.patches)) == len(s.patches)
        assert not {"test_klp_fz_tgt_a", "test_klp_fz_tgt_c"} <= set(s.targets)
        for t in s.targets:  # only targets some chosen patch patches
            assert any(f'name = "{t}"' in POOL[p] for p in s.patches)


def test_guest_script_loads_in_order_and_reads_every_function():
    s = CheckSet("x", ["test_klp_fz_tgt_b"], ["test_klp_fz_lp3", "test_klp_fz_lp1"])
    text = guest_script(s, POOL)
    loads = [ln for ln in text.splitlines() if ln.startswith("insmod ")]
    assert loads == [
        "insmod /klp/mods/test_klp_fz_tgt_b.ko || echo '@target-failed test_klp_fz_tgt_b'",
        "insmod /klp/mods/test_klp_fz_lp3.ko",
        "insmod /klp/mods/test_klp_fz_lp1.ko",
    ]
    reads = [ln for ln in text.splitlines() if ln.startswith("klpsim_run ")]
    assert len(reads) == 2 * (len(PROC_SHOW) + 2)
    assert "klpsim_run test_klp_fz_tgt_b:b2 /proc/test_klp_fz_tgt_b/b2" in reads


GUEST_OUT = """\
@load lp_a 0
@patches lp_a
@run vmlinux:cmdline_proc_show lp_a: this has been live patched
@run vmlinux:meminfo_proc_show MemTotal:         473428 kB
@load lp_b 1
@patches lp_a
@run vmlinux:cmdline_proc_show lp_a: this has been live patched
@run vmlinux:meminfo_proc_show MemTotal:         473428 kB
"""


def test_parse_guest_and_diff():
    s = CheckSet("x", [], ["lp_a", "lp_b"])
    seen = parse_guest(GUEST_OUT, s)
    assert seen == [
        (True, ["lp_a"], {"vmlinux:cmdline_proc_show": "lp_a", "vmlinux:meminfo_proc_show": None}),
        (False, ["lp_a"], {"vmlinux:cmdline_proc_show": "lp_a", "vmlinux:meminfo_proc_show": None}),
    ]
    assert _diff(s, seen, seen) == []
    wrong = [seen[0], (True, ["lp_b"], {"vmlinux:cmdline_proc_show": None})]
    assert _diff(s, wrong, seen) == [
        "x load 2 (lp_b): accepted True predicted, False seen",
        "x load 2 (lp_b): patches ['lp_b'] predicted, ['lp_a'] seen",
        "x load 2 (lp_b): vmlinux:cmdline_proc_show runs None predicted, lp_a seen",
    ]
    assert _diff(s, seen[:1], seen) == ["x: 1 loads predicted, 2 seen"]


def test_predictions_come_from_checks_loader(tmp_path):
    pool = {
        "lp_a": 'livepatch = true\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "cmdline_proc_show" }]\n[[states]]\nid = 1\nversion = 2\n',
        "lp_b": 'livepatch = true\nreplace = true\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "meminfo_proc_show" }]\n[[states]]\nid = 1\nversion = 1\n',
        "lp_c": 'livepatch = true\nreplace = true\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "uptime_proc_show" }]\n[[states]]\nid = 1\nversion = 2\n',
    }
    files = {}
    for name, text in pool.items():
        files[name] = tmp_path / f"{name}.toml"
        files[name].write_text(text)
    got = predict(CheckSet("x", [], ["lp_a", "lp_b", "lp_c"]), files, "6.12", pool)
    accepted = [g[0] for g in got]
    assert accepted == [True, False, True]  # lp_b would drop to state 1 version 1
    assert [g[1] for g in got] == [["lp_a"], ["lp_a"], ["lp_c"]]
    assert got[0][2]["vmlinux:cmdline_proc_show"] == "lp_a"
    assert got[2][2]["vmlinux:cmdline_proc_show"] is None  # reverted by lp_c's replace
    assert got[2][2]["vmlinux:uptime_proc_show"] == "lp_c"


def test_replace_set_pool_and_predictions(tmp_path):
    # the replace-set kernel's pool: livepatches of sets 0-2, no replace
    pool = module_pool(5, "replace-set")
    lps = [t for n, t in pool.items() if t.startswith("livepatch") and "_sympos" not in n]
    assert {t.splitlines()[1] for t in lps} == {f"replace_set = {n}" for n in (0, 1, 2)}
    sets = make_sets(pool, 5, 20)
    assert not any("_sympos" in p for s in sets for p in s.patches)  # fuzz's sympos modules
    assert not any("replace =" in t for t in lps)
    pool = {
        "lp_a": 'livepatch = true\nreplace_set = 1\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "cmdline_proc_show" }]\n',
        "lp_b": 'livepatch = true\nreplace_set = 2\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "cmdline_proc_show" }]\n',
        "lp_c": 'livepatch = true\nreplace_set = 1\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "uptime_proc_show" }]\n',
    }
    files = {}
    for name, text in pool.items():
        files[name] = tmp_path / f"{name}.toml"
        files[name].write_text(text)
    got = predict(CheckSet("x", [], ["lp_a", "lp_b", "lp_c"]), files, "replace-set", pool)
    assert [g[0] for g in got] == [True, False, True]  # lp_b: a function of set 1
    assert [g[1] for g in got] == [["lp_a"], ["lp_a"], ["lp_c"]]  # lp_c replaces its set
    assert got[2][2]["vmlinux:cmdline_proc_show"] is None
    assert got[2][2]["vmlinux:uptime_proc_show"] == "lp_c"
