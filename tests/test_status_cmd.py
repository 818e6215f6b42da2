"""``klpsim status``: the views of a script at a line, and of a host snapshot."""

from pathlib import Path

from fakehost import FakeHost, run_python, standard_host
from harness import ROOT, klpsim

EXAMPLE = ROOT / "examples" / "livepatch-at-work.sh"


def section(text: str, first: str) -> list[str]:
    """The lines of *text* from the one starting with *first* to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def test_status_at_a_line_is_what_the_verbs_print_there(tmp_path):
    lines = EXAMPLE.read_text().splitlines()
    at = lines.index("sleep 3") + 1
    r = klpsim("status", str(EXAMPLE), "--at", str(at))
    assert (r.status, r.err) == (0, "")
    # the same script, cut at that line, with the verbs appended
    cut = tmp_path / "cut.sh"
    cut.write_text(
        "\n".join(lines[:at]) + "\nklp_status\nfunc_stack cmdline_proc_show\nklp_blocking\n"
    )
    (tmp_path / "test_modules").symlink_to(EXAMPLE.parent / "test_modules")
    run = klpsim("run", "--quiet-notes", str(cut))
    verbs = run.out.split("$ klp_status\n", 1)[1]
    status = verbs.split("$ func_stack")[0]
    assert r.out.startswith(status + "\n")
    assert status.splitlines()[0] == "status: in_progress ('lp_cmdline_v2' patching)"
    stack = verbs.split("$ func_stack cmdline_proc_show\n")[1].split("$ klp_blocking\n")
    assert section(r.out, "func_stack of cmdline_proc_show") == stack[0].splitlines()
    assert r.out.endswith(stack[1])
    assert "1001 reader: cmdline_proc_show is on its stack" in stack[1]


def test_status_without_at_runs_the_whole_script():
    r = klpsim("status", str(EXAMPLE))
    assert r.status == 0
    assert r.out.splitlines()[:5] == [
        "status: ready",
        "Loaded patch modules, in klp_patches order:",
        "PATCH          STATE      SET  ENABLED  TRANSITION  FORCED",
        "lp_hook        [enabled]  1    1        0           0",
        "lp_cmdline_v2  [enabled]  0    1        0           0",
    ]
    assert r.out.endswith("no transition in progress: nothing blocks\n")


def test_a_script_that_stops_early_says_so(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("load_lp test_klp_livepatch\ndie oops\nload_lp test_klp_syscall\n")
    r = klpsim("status", "--kernel", "7.1", str(script), "--at", "3")
    assert r.status == 0
    assert r.err == (
        "ERROR: oops\n"
        f"klpsim: status: {script} stopped at line 2 (exit status 1); "
        "the views show the state it left\n"
    )
    assert "test_klp_livepatch  [enabled]" in r.out and "test_klp_syscall" not in r.out


def test_bad_status_arguments_are_one_line(tmp_path):
    for argv, message in (
        (["status"], "klpsim: status: give a SCRIPT (with --at LINE) or --snapshot SNAP\n"),
        ([str(EXAMPLE), "--at", "0"], "klpsim: status: --at 0: lines count from 1\n"),
        (
            [str(EXAMPLE), "--snapshot", "x"],
            "klpsim: status: --snapshot takes no SCRIPT or --at\n",
        ),
        (
            ["--snapshot", str(tmp_path / "none.tar.gz")],
            f"klpsim: {tmp_path / 'none.tar.gz'}: No such file or directory\n",
        ),
        (
            [str(tmp_path / "none.sh")],
            f"klpsim: {tmp_path / 'none.sh'}: No such file or directory\n",
        ),
    ):
        argv = argv if argv[:1] == ["status"] else ["status", *argv]
        r = klpsim(*argv)
        assert (r.status, r.out, r.err) == (2, "", message), argv


def test_status_of_a_snapshot(tmp_path):
    standard_host(tmp_path / "root")
    snap = tmp_path / "snap.tar.gz"
    assert run_python(tmp_path / "root", snap).returncode == 0
    r = klpsim("status", "--snapshot", str(snap))
    assert (r.status, r.err) == (0, "")
    out = r.out
    assert section(out, "status:") == [
        "status: in_progress ('lp_c' patching)",
        "Loaded patch modules (order: module load order (/proc/modules lists the newest "
        "first; a livepatch joins klp_patches as its module loads)):",
        "PATCH  STATE          REPLACE  ENABLED  TRANSITION  FORCED",
        "lp_a   [enabled]      1        1        0           ?",
        "lp_b   [enabled]      0        1        0           ?",
        "lp_c   [enabling...]  0        1        1           ?",
    ]
    # lp_b's xfs object is not loaded (patched 0): no func_stack holds xfs_foo
    assert "xfs_foo" not in out.split("'lp_c' is patching")[0]
    assert section(out, "func_stack of cmdline_proc_show") == [
        "func_stack of cmdline_proc_show, top first:",
        "  1  lp_b  new code of lp_b",
        "  2  lp_a  new code of lp_a",
        "every task runs new code of lp_b",
    ]
    assert section(out, "func_stack of meminfo_proc_show")[-2:] == [
        "a patched task runs new code of lp_c",
        "an unpatched task runs vmlinux:meminfo_proc_show (the original)",
    ]
    # the threads whose patch_state is not 1, with their stacks
    assert out.split("\n\n")[-1].splitlines() == [
        "'lp_c' is patching; 2 tasks have not switched",
        "42 a b) (c: patch_state 0, not switched",
        "    cmdline_proc_show+0x10/0x40",
        "    seq_read_iter+0x11a/0x4b0",
        "43 worker:\\x: patch_state 0, not switched",
    ]


def test_snapshot_blocking_marks_the_changed_function(tmp_path):
    h = FakeHost(tmp_path / "root")
    h.module("lp_x", refcnt=1, taints="OEK")
    h.patch("lp_x", {"vmlinux": ["meminfo_proc_show,1"]}, replace=1, transition=1, enabled=0)
    h.task(7, 7, "cat", stack=["seq_read_iter+0x11a/0x4b0"], patch_state=0)
    h.task(9, 9, "reader", stack=["livepatch_meminfo+0x5/0x40 [lp_x]", "seq_read_iter+0x1/0x4b0"],
           patch_state=1)  # fmt: skip
    snap = tmp_path / "snap.tar.gz"
    assert run_python(tmp_path / "root", snap).returncode == 0
    r = klpsim("status", "--snapshot", str(snap))
    # disabling: the target is 0; pid 9 is still patched, in lp_x's code
    assert r.out.split("\n\n")[-1].splitlines() == [
        "'lp_x' is unpatching; 1 task has not switched",
        "9 reader: patch_state 1, not switched; livepatch_meminfo is on its stack",
        "  > livepatch_meminfo+0x5/0x40 [lp_x]",
        "    seq_read_iter+0x1/0x4b0",
    ]
    assert "status: in_progress ('lp_x' unpatching)" in r.out
    assert "lp_x   [disabling...]" in r.out


def test_status_of_a_bad_snapshot_is_one_line(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    r = klpsim("status", "--snapshot", str(bad))
    assert r.status == 2 and r.out == "" and len(r.err.splitlines()) == 1
    assert r.err.startswith(f"klpsim: {bad}")


def test_status_reads_the_example_modules_beside_the_script():
    # a script run from elsewhere finds test_modules/ beside itself
    at = EXAMPLE.read_text().splitlines().index("load_lp lp_cmdline_v1") + 1
    r = klpsim("status", str(Path(EXAMPLE).resolve()), "--at", str(at))
    assert "lp_cmdline_v1  [enabled]" in r.out
