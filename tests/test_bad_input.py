"""Bad input: one clear line naming the file and the place, exit 2, no traceback."""

import pytest

from harness import klpsim


def script(tmp_path, text, name="s.sh"):
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line_error(r, status=2):
    assert r.status == status, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err
    return lines[0]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("log start\necho 'unterminated\n\n", 2, "unterminated single quote"),
        ('log x\nlog "open\n', 2, "unterminated double quote"),
        ("log a\nfrobnicate now\n", 2, "unknown command 'frobnicate'"),
        ("cat /proc/cmdline | grep x\n", 1, "pipes are not supported"),
        ("log a\n\necho $HOME\n", 3, "variables"),
        ("ls /sys/kernel/livepatch/*\n", 1, "globs"),
        ("log a; log b\n", 1, "one command a line"),
        ("load_lp\n", 1, "usage: load_lp MOD"),
        ("echo 1 >\n", 1, "needs a file name"),
    ],
)
def test_script_errors_name_the_line(tmp_path, text, line, words):
    path = script(tmp_path, text)
    msg = one_line_error(klpsim("run", str(path)))
    assert msg.startswith(f"klpsim: {path}:{line}: ")
    assert words in msg


def test_nothing_runs_before_an_unknown_verb(tmp_path):
    path = script(tmp_path, "log hello\nnosuchverb\n")
    r = klpsim("run", "--dmesg", str(path))
    assert r.status == 2 and r.out == ""


def test_unknown_module(tmp_path):
    path = script(tmp_path, "log a\nload_lp no_such_module\n")
    msg = one_line_error(klpsim("run", str(path)))
    assert msg == (
        f"klpsim: {path}:2: unknown module 'no_such_module' (looked for no_such_module.toml "
        f"in {tmp_path}/test_modules/, then in klpsim's built-in modules)"
    )


@pytest.mark.parametrize(
    "toml, key",
    [
        ("livepatch = true\nreplace_sett = 1\n", "replace_sett"),
        ('livepatch = "yes"\n', "livepatch"),
        (
            'livepatch = true\n[[objects]]\nname = "vmlinux"\nfuncs = [{ old_nam = "x" }]\n',
            "objects[0].funcs[0].old_nam",
        ),
        (
            'livepatch = true\n[[objects]]\nname = "vmlinux"\nfuncs = [{ old_name = 3 }]\n',
            "objects[0].funcs[0].old_name",
        ),
        ("livepatch = true\n[[states]]\nid = 0\n", "states[0].id"),
        ('functions = "f"\n', "functions"),
    ],
)
def test_bad_toml_names_file_and_key(tmp_path, toml, key):
    (tmp_path / "test_modules").mkdir()
    bad = tmp_path / "test_modules" / "badmod.toml"
    bad.write_text(toml)
    path = script(tmp_path, "load_lp badmod\n")
    msg = one_line_error(klpsim("run", str(path)))
    assert f"{bad}: key '{key}'" in msg
    assert msg.startswith(f"klpsim: {path}:1: ")


def test_toml_syntax_error(tmp_path):
    (tmp_path / "test_modules").mkdir()
    (tmp_path / "test_modules" / "broken.toml").write_text("livepatch = \n")
    msg = one_line_error(klpsim("run", str(script(tmp_path, "load_lp broken\n"))))
    assert "broken.toml" in msg


def test_garbage_into_enabled_is_einval_and_the_script_goes_on(tmp_path):
    path = script(
        tmp_path,
        "load_lp test_klp_livepatch\n"
        "echo garbage > /sys/kernel/livepatch/test_klp_livepatch/enabled\n"
        "cat /sys/kernel/livepatch/test_klp_livepatch/enabled\n",
    )
    r = klpsim("run", "--kernel", "7.1", str(path))
    assert r.status == 0
    assert r.err == "bash: echo: write error: Invalid argument\n"
    assert r.out.rstrip().endswith("1")


def test_missing_script_and_bad_options(tmp_path):
    msg = one_line_error(klpsim("run", str(tmp_path / "nope.sh")))
    assert msg == f"klpsim: {tmp_path / 'nope.sh'}: No such file or directory"
    msg = one_line_error(klpsim("run", "--kernel", "9.9", str(script(tmp_path, "log a\n"))))
    assert "unknown kernel profile '9.9'" in msg
    one_line_error(klpsim("run", "--bogus", "x"))
    msg = one_line_error(klpsim("run", "--modules", str(tmp_path / "nodir"), "x.sh"))
    assert "not a directory" in msg


def test_binary_script(tmp_path):
    path = tmp_path / "bin.sh"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "not a text file" in one_line_error(klpsim("run", str(path)))


def test_failing_helper_exits_1(tmp_path):
    path = script(tmp_path, "load_mod test_klp_livepatch\nlog never\n")
    r = klpsim("run", "--kernel", "7.1", "--dmesg", str(path))
    assert r.status == 1
    assert "ERROR: use load_lp() to load the livepatch module test_klp_livepatch" in r.out
    assert "never" not in r.out


def test_check_result_mismatch_prints_a_diff(tmp_path):
    path = script(tmp_path, "start_test x\nlog 'livepatch: hello'\ncheck_result 'livepatch: bye'\n")
    r = klpsim("run", str(path))
    assert r.status == 1
    assert "--- expected\n+++ result\n" in r.err and "-livepatch: bye\n+livepatch: hello" in r.err


def test_loop_until_fails_without_stopping_the_script(tmp_path):
    # functions.sh's loop_until returns 1; only its callers die.
    path = script(tmp_path, "loop_until test -e /no/such/file\nlog 'livepatch: after'\n")
    r = klpsim("run", "--dmesg", str(path))
    assert r.status == 0
    assert r.err == "loop_until: gave up after 600 retries: test -e /no/such/file\n"
    assert r.out.splitlines()[-1] == "livepatch: after"
