"""``klpsim check``: a verdict on a set of livepatches, by running the model."""

import json

import pytest

from harness import klpsim
from test_inspect import klp_patch_module


def lp(tmp_path, name: str, *funcs: str, replace_set: int = 0, replace: bool = False,
       states: tuple[tuple[int, int], ...] = ()) -> str:  # fmt: skip
    body = "".join(f'  {{ old_name = "{f}" }},\n' for f in funcs)
    text = f"livepatch = true\nreplace = {str(replace).lower()}\nreplace_set = {replace_set}\n"
    if funcs:
        text += f'[[objects]]\nname = "vmlinux"\nfuncs = [\n{body}]\n'
    for sid, version in states:
        text += f"[[states]]\nid = {sid}\nversion = {version}\n"
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def teams(tmp_path) -> list[str]:
    return [
        lp(
            tmp_path,
            "net_v1",
            "cmdline_proc_show",
            "meminfo_proc_show",
            replace_set=1,
            states=((10, 1),),
        ),  # fmt: skip
        lp(tmp_path, "fs_v1", "meminfo_proc_show", "uptime_proc_show", replace_set=2),
        lp(
            tmp_path,
            "net_v2",
            "cmdline_proc_show",
            "version_proc_show",
            replace_set=1,
            states=((10, 2),),
        ),  # fmt: skip
    ]


def test_two_teams_on_the_replace_set_kernel(tmp_path):
    r = klpsim("check", *teams(tmp_path))
    assert r.status == 1 and r.err == ""
    t = str(tmp_path)
    assert (
        r.out
        == f"""\
kernel replace-set: 3 livepatch(es)
  net_v1                   {t}/net_v1.toml  (replace_set 1; states: 10 v1)
  fs_v1                    {t}/fs_v1.toml  (replace_set 2; states: none)
  net_v2                   {t}/net_v2.toml  (replace_set 1; states: 10 v2)

functions                     1  2  3
vmlinux:cmdline_proc_show,0   X  .  X
vmlinux:meminfo_proc_show,0   X  X  .
vmlinux:uptime_proc_show,0    .  X  .
vmlinux:version_proc_show,0   .  .  X
  (columns: the patches in the order above)

load 1: net_v1: accepted
    new        vmlinux:cmdline_proc_show,0
    new        vmlinux:meminfo_proc_show,0
load 2: fs_v1: REFUSED (-EINVAL): set-function: a function that a patch of another replace set patches: vmlinux:meminfo_proc_show,0, in net_v1 (replace_set 1, this one 2)
load 3: net_v2: accepted, replaces net_v1
    re-patched vmlinux:cmdline_proc_show,0 (was net_v1)
    new        vmlinux:version_proc_show,0
    reverted   vmlinux:meminfo_proc_show,0 to the original (was net_v1)

verdict: FAIL: 2 of 3 loads accepted, 0 silent revert(s)
"""
    )


def test_json_names_rule_function_and_both_patches(tmp_path):
    r = klpsim("check", "--json", *teams(tmp_path))
    got = json.loads(r.out)
    assert r.status == 1 and got["ok"] is False and got["kernel"] == "replace-set"
    assert list(got) == ["kernel", "ok", "patches", "targets", "matrix", "loads", "orders",
                         "suggested_sets"]  # fmt: skip
    refused = got["loads"][1]
    assert {
        k: refused[k]
        for k in (
            "patch",
            "accepted",
            "errno",
            "error",
            "reason",
            "rule",
            "function",
            "state_id",
            "other",
        )
    } == {  # fmt: skip
        "patch": "fs_v1",
        "accepted": False,
        "errno": -22,
        "error": "-EINVAL",
        "reason": "incompatible",
        "rule": "set-function",
        "function": "vmlinux:meminfo_proc_show,0",
        "state_id": None,
        "other": "net_v1",
    }
    assert (
        "livepatch: Livepatch patch (fs_v1) is not compatible with the already installed livepatches."
        in refused["log"]
    )
    third = got["loads"][2]
    assert third["replaces"] == ["net_v1"] and third["patches_after"] == ["net_v2"]
    assert [(c["function"], c["change"]) for c in third["functions"]] == [
        ("vmlinux:cmdline_proc_show,0", "re-patched"),
        ("vmlinux:version_proc_show,0", "new"),
        ("vmlinux:meminfo_proc_show,0", "reverted"),
    ]
    assert got["matrix"][1] == {"function": "vmlinux:meminfo_proc_show,0",
                                "patches": ["net_v1", "fs_v1"]}  # fmt: skip


def test_mainline_replace_silently_removes_another_teams_functions(tmp_path):
    files = [
        lp(tmp_path, "team_a", "cmdline_proc_show"),
        lp(tmp_path, "team_b", "uptime_proc_show"),
        lp(tmp_path, "team_a_v2", "cmdline_proc_show", replace=True),
    ]
    r = klpsim("check", "--kernel", "6.12", "--json", *files)
    got = json.loads(r.out)
    assert r.status == 1
    last = got["loads"][2]
    assert last["replaces"] == ["team_a", "team_b"]
    assert last["silent_reverts"] == ["vmlinux:uptime_proc_show,0"]
    # the same loads with team_a_v2 declared as team_b's own line: no hazard
    files[2] = lp(tmp_path, "team_a_v2", "uptime_proc_show", replace=True)
    r = klpsim("check", "--kernel", "6.12", *files[1:])
    assert r.status == 0, r.out
    assert "verdict: OK: 2 of 2 loads accepted, 0 silent revert(s)" in r.out


def test_state_downgrade_of_the_same_set(tmp_path):
    files = [
        lp(tmp_path, "v2", "cmdline_proc_show", replace_set=4, states=((3, 2),)),
        lp(tmp_path, "v1", "cmdline_proc_show", replace_set=4, states=((3, 1),)),
    ]
    got = json.loads(klpsim("check", "--json", *files).out)
    refused = got["loads"][1]
    assert (refused["rule"], refused["state_id"], refused["other"]) == ("state-downgrade", 3, "v2")


def test_order_any_finds_the_smallest_failing_order(tmp_path):
    files = [
        lp(tmp_path, "v1", "cmdline_proc_show", replace_set=4, states=((3, 1),)),
        lp(tmp_path, "other", "uptime_proc_show", replace_set=5),
        lp(tmp_path, "v2", "cmdline_proc_show", replace_set=4, states=((3, 2),)),
    ]
    r = klpsim("check", "--order", "any", "--json", *files)
    got = json.loads(r.out)
    assert all(load["accepted"] for load in got["loads"])  # as given it works
    o = got["orders"]
    assert o["exhaustive"] and o["depends_on_order"] is True
    assert o["smallest_failing"] == ["v2", "v1"]
    assert o["failing_load"]["rule"] == "state-downgrade"
    assert r.status == 1


def test_suggest_sets_merges_what_shares_a_function_or_a_state(tmp_path):
    files = [
        lp(tmp_path, "a", "cmdline_proc_show"),
        lp(tmp_path, "b", "uptime_proc_show", states=((9, 1),)),
        lp(tmp_path, "c", "cmdline_proc_show", "meminfo_proc_show"),
        lp(tmp_path, "d", "version_proc_show", replace_set=7),
        lp(tmp_path, "e", states=((9, 1),)),
    ]
    got = json.loads(klpsim("check", "--kernel", "6.12", "--suggest-sets", "--json", *files).out)
    s = got["suggested_sets"]
    assert {e["patch"]: e["replace_set"] for e in s["sets"]} == {
        "a": 1, "b": 2, "c": 1, "d": 7, "e": 2,
    }  # fmt: skip
    assert s["merges"] == [
        {"patches": ["a", "c"], "because": "function vmlinux:cmdline_proc_show,0"},
        {"patches": ["b", "e"], "because": "state id 9"},
    ]
    # a set is one cumulative line: e replaces b and drops its function, b's
    # state is kept; c replaces a. Every load is accepted on replace-set.
    assert s["verified_on"] == "replace-set" and s["all_accepted"] is True


def test_a_conflict_names_the_function_as_the_patch_does(tmp_path):
    # events name it tgt:tgt_show (function_label()); check keeps object and sympos
    tgt = tmp_path / "tgt.toml"
    tgt.write_text('functions = ["tgt_show"]\n')
    files = []
    for name, rs in (("p1", 1), ("p2", 2)):
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'livepatch = true\nreplace_set = {rs}\n[[objects]]\nname = "tgt"\n'
            'funcs = [{ old_name = "tgt_show", old_sympos = 1 }]\n'
        )
        files.append(str(path))
    got = json.loads(klpsim("check", "--json", str(tgt), *files).out)
    refused = got["loads"][1]
    assert (refused["rule"], refused["function"], refused["other"]) == (
        "set-function",
        "tgt:tgt_show,1",
        "p1",
    )


def test_a_missing_symbol_with_kallsyms(tmp_path):
    table = tmp_path / "System.map"
    table.write_text("ffffffff81000000 T _text\nffffffff81001000 T cmdline_proc_show\n")
    files = [lp(tmp_path, "p", "cmdline_proc_show", "meminfo_proc_show")]
    got = json.loads(klpsim("check", "--kallsyms", str(table), "--json", *files).out)
    load = got["loads"][0]
    assert (load["accepted"], load["reason"], load["rule"], load["function"]) == (
        False, "init", "symbol-not-found", "vmlinux:meminfo_proc_show,0",
    )  # fmt: skip
    assert "livepatch: symbol 'meminfo_proc_show' not found in symbol table" in load["log"]


def test_ko_files_and_their_settings(tmp_path):
    ko = tmp_path / "lp_mini.ko"
    ko.write_bytes(klp_patch_module(1))  # the ambiguous word holds 1
    got = json.loads(klpsim("check", "--kernel", "6.12", "--json", str(ko)).out)
    assert got["patches"][0]["replace"] is True and got["patches"][0]["replace_set"] == 0
    got = json.loads(klpsim("check", "--json", str(ko)).out)
    assert got["patches"][0]["replace_set"] == 1
    got = json.loads(klpsim("check", "--json", "--replace-set", "lp_mini=9", str(ko)).out)
    assert got["patches"][0]["replace_set"] == 9


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nope.toml"], "nope.toml: No such file or directory"),
        (["x.txt"], "x.txt: not a .ko or .toml file"),
        (["--kernel", "9.9", "a.toml"], "unknown kernel profile '9.9' (see 'klpsim kernels')"),
        (["--replace", "a", "a.toml"], "--replace a: expected MODULE=VALUE"),
        (
            ["--replace-set", "zz=1", "a.toml"],
            "--replace/--replace-set zz: no livepatch of that name is given",
        ),  # fmt: skip
        (["a.toml", "a.toml"], "a.toml: module 'a' is also a.toml"),
    ],
)
def test_bad_input_is_one_line(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    lp(tmp_path, "a", "cmdline_proc_show")
    (tmp_path / "x.txt").write_text("")
    r = klpsim("check", *argv)
    assert (r.status, r.out, r.err) == (2, "", f"klpsim: {message}\n")


def _shown(doc: str) -> list[tuple[list[str], str]]:
    """Each ``$ klpsim check ...`` of the examples in *doc*, and what it shows."""
    import re
    import shlex

    from harness import ROOT

    text = (ROOT / doc).read_text()
    out = []
    for m in re.finditer(r"```\n\$ klpsim check ((?:[^\n]*\\\n)*[^\n]*)\n(.*?)```", text, re.S):
        argv = shlex.split(m.group(1).replace("\\\n", " "))
        if any(a.startswith("examples/") for a in argv):
            out.append((argv, m.group(2)))
    return out


@pytest.mark.parametrize("doc", ["README.md", "docs/shipping-livepatches.md"])
def test_the_documented_check_examples_are_real(doc, monkeypatch):
    from harness import ROOT

    monkeypatch.chdir(ROOT)
    shown = _shown(doc)
    assert shown, f"{doc} shows no klpsim check of examples/"
    for argv, text in shown:
        assert klpsim("check", *argv).out == text, argv


def test_a_plain_module_is_loaded_first_and_one_that_does_not_load_is_bad_input(tmp_path):
    tgt = tmp_path / "tgt.toml"
    tgt.write_text('functions = ["tgt_show"]\n')
    patch = tmp_path / "p.toml"
    patch.write_text(
        'livepatch = true\n[[objects]]\nname = "tgt"\nfuncs = [{ old_name = "tgt_show" }]\n'
    )
    got = json.loads(klpsim("check", "--json", str(patch), str(tgt)).out)
    assert got["targets"] == [{"file": str(tgt), "name": "tgt"}]
    assert got["loads"][0]["functions"] == [
        {"function": "tgt:tgt_show,0", "change": "new", "before": None, "after": "p"}
    ]
    clash = tmp_path / "clash.toml"
    clash.write_text('functions = ["tgt_show"]\n')
    r = klpsim("check", str(tgt), str(clash), str(patch))
    assert (r.status, r.out) == (2, "")
    assert r.err == (
        f"klpsim: {clash}: the plain module does not load (ENOEXEC): "
        "clash: exports duplicate symbol tgt_show (owned by tgt)\n"
    )
