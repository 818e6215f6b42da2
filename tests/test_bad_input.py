"""Bad input: one clear line naming the file and the place, exit 2, no traceback."""

import shlex
import subprocess
import sys
import time

import pytest

from harness import klpsim
from klpsim.session import Session


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
    "text, where, words",
    [
        ("log start\necho 'unterminated\n\n", "2:6", "unterminated single quote"),
        ('log x\nlog "open\n', "2:5", "unterminated double quote"),
        ("log a\nfrobnicate now\n", "2", "unknown command 'frobnicate'"),
        ("cat /proc/cmdline | grep x\n", "1:19", "pipes ('|') are not supported"),
        ("log a\n\necho $HOME\n", "3:6", "'$HOME' is a variable"),
        ("ls /sys/kernel/livepatch/*\n", "1:26", "'*' is a glob"),
        ("log a; log b\n", "1:6", "one command a line"),
        ("load_lp\n", "1", "usage: load_lp MOD"),
        ("echo 1 >\n", "1:8", "needs a file name"),
    ],
)
def test_script_errors_name_the_line(tmp_path, text, where, words):
    path = script(tmp_path, text)
    msg = one_line_error(klpsim("run", str(path)))
    assert msg.startswith(f"klpsim: {path}:{where}: ")
    assert words in msg


def test_nothing_runs_before_an_unknown_verb(tmp_path):
    path = script(tmp_path, "log hello\nnosuchverb\n")
    r = klpsim("run", "--dmesg", str(path))
    assert r.status == 2 and r.out == ""


def test_unknown_module(tmp_path):
    path = script(tmp_path, "log a\nload_lp no_such_module\n")
    msg = one_line_error(klpsim("run", str(path)))
    assert msg == (
        f"klpsim: {path}:2: unknown module 'no_such_module' (looked for no_such_module.toml or no_such_module.ko "
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


# -- regression tests for what the bad-input fuzzer found (issue 9) -----------------------


def test_fuzz_dry_run_out_is_a_file(tmp_path):
    out = tmp_path / "a-file"
    out.write_text("")
    msg = one_line_error(
        klpsim(
            "fuzz", "--kernel", "6.1", "--seed", "1", "--count", "1", "--dry-run", "--out", str(out)
        )  # fmt: skip
    )
    assert msg == f"klpsim: --out {out}: not a directory"


@pytest.mark.parametrize("form", ["load_lp {}", "insmod test_modules/{}.ko", "modprobe {}"])
def test_module_name_longer_than_the_file_system_allows(tmp_path, form):
    (tmp_path / "test_modules").mkdir()
    path = script(tmp_path, "log a\n" + form.format("x" * 300) + "\n")
    msg = one_line_error(klpsim("run", str(path)))
    assert msg == (
        f"klpsim: {path}:2: module name 'xxxxxxxxxxxxxxxxxxxx...' is longer than 55 characters "
        "(MODULE_NAME_LEN)"
    )


@pytest.mark.parametrize(
    "line, usage",
    [
        ("set_ftrace_enabled", "usage: set_ftrace_enabled VALUE [--fail]"),
        ("set_ftrace_enabled --fail", "usage: set_ftrace_enabled VALUE [--fail]"),
        ("loop_until", "usage: loop_until COMMAND [ARG...]"),
    ],
)
def test_verbs_without_their_argument(tmp_path, line, usage):
    path = script(tmp_path, f"log a\n{line}\n")
    assert one_line_error(klpsim("run", str(path))) == f"klpsim: {path}:2: {usage}"


def run_cli(*argv: str, shell_suffix: str) -> subprocess.CompletedProcess:
    """``klpsim ARGV`` as a separate process, with a shell redirection."""
    cmd = " ".join([shlex.quote(sys.executable), "-m", "klpsim", *map(shlex.quote, argv)])
    return subprocess.run(
        ["bash", "-c", f"{cmd} {shell_suffix}"], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "suffix, message",
    [
        (">&-", "klpsim: write error: Bad file descriptor"),
        (">/dev/full", "klpsim: write error: No space left on device"),
    ],
)
def test_stdout_closed_or_full(tmp_path, suffix, message):
    path = script(tmp_path, "log hello\ncat /proc/cmdline\n")
    r = run_cli("run", "--kernel", "7.1", str(path), shell_suffix=suffix)
    assert (r.returncode, r.stderr) == (74, message + "\n")


def test_stdout_closed_early_is_quiet(tmp_path):
    path = script(tmp_path, "".join(f"log line {i}\n" for i in range(3000)))
    r = run_cli("run", "--kernel", "7.1", str(path), shell_suffix="| head -1")
    assert r.stderr == "" and r.stdout.startswith("$ log line 0")


def test_target_with_an_empty_function_name(tmp_path):
    (tmp_path / "test_modules").mkdir()
    toml = tmp_path / "test_modules" / "tgt.toml"
    toml.write_text('functions = [""]\n')
    path = script(tmp_path, "load_mod tgt\n")
    assert one_line_error(klpsim("run", str(path))) == (
        f"klpsim: {path}:1: {toml}: key 'functions[0]': '' is not a function name (a C identifier)"
    )


def test_semantics_with_a_bad_script_names_the_file(tmp_path):
    (tmp_path / "1-bad.sh").write_text("log a\nlog b | c\n")
    msg = one_line_error(klpsim("semantics", "--scenarios", str(tmp_path)))
    assert msg == (
        f"klpsim: {tmp_path}/1-bad.sh:2:7: pipes ('|') are not supported: one command a line"
    )


@pytest.mark.parametrize(
    "word, why",
    [
        ("nan", "invalid time interval 'nan'"),
        ("inf", "'inf' never ends: the simulated clock stops at KTIME_MAX (292 years)"),
        ("1e400", "'1e400' never ends: the simulated clock stops at KTIME_MAX (292 years)"),
        ("-1", "invalid time interval '-1'"),
        ("1x", "invalid time interval '1x'"),
    ],
)
def test_sleep_of_no_finite_interval(tmp_path, word, why):
    path = script(tmp_path, f"log a\nsleep {word}\n")
    assert one_line_error(klpsim("run", str(path))) == f"klpsim: {path}:2: sleep: NUMBER: {why}"


def test_sleep_takes_coreutils_units(tmp_path):
    path = script(tmp_path, "sleep 1.5s 1m 0.001h\ncat /proc/uptime\nlog done\n")
    r = klpsim("run", "--kernel", "7.1", str(path))
    assert r.status == 0, r.err
    assert "[   65.10" in r.out  # 1.5 + 60 + 3.6 s, and a millisecond a command


def test_huge_number_into_a_module_parameter(tmp_path):
    huge = "9" * 5000
    path = script(
        tmp_path,
        "load_lp test_klp_callbacks_demo\n"
        f"echo {huge} > /sys/module/test_klp_callbacks_demo/parameters/pre_patch_ret\n"
        f"load_mod test_klp_callbacks_mod\n"
        "log after\n",
    )
    r = klpsim("run", "--kernel", "7.1", "--dmesg", str(path))
    assert r.status == 0, r.err
    assert r.err == "bash: echo: write error: Numerical result out of range\n"
    assert r.out.splitlines()[-1] == "after"


def test_huge_number_on_the_insmod_line(tmp_path):
    path = script(
        tmp_path, f"insmod test_modules/test_klp_callbacks_demo.ko pre_patch_ret=1{'0' * 5000}\n"
    )
    r = klpsim("run", "--kernel", "7.1", "--dmesg", str(path))
    assert r.status == 0
    assert (
        r.err
        == "insmod: ERROR: could not insert module test_modules/test_klp_callbacks_demo.ko: Numerical result out of range\n"
    )


def test_sleeping_kthread_and_a_long_sleep_take_no_time(tmp_path):
    """The clock jumps over the retries of a transition that cannot complete,
    and the log is byte for byte the one stepping through them gives."""
    text = (
        "spawn_task kt --kthread\n"
        "sleep_task 1001 cmdline_proc_show\n"
        "load_lp_nowait test_klp_livepatch\n"
        "sleep {}\n"
        "wake_task 1001\n"
        "sleep 2\n"
        "cat /sys/kernel/livepatch/test_klp_livepatch/transition\n"
    )
    start = time.perf_counter()
    r = klpsim("run", "--kernel", "7.1", str(script(tmp_path, text.format("1e7"))))
    assert time.perf_counter() - start < 1.0
    assert r.status == 0 and r.out.endswith(
        "$ cat /sys/kernel/livepatch/test_klp_livepatch/transition\n0\n"
    )
    assert "[10000001.000000] livepatch: 'test_klp_livepatch': patching complete" in r.out
    logs = []
    for jump in (True, False):
        s = Session("7.1", transcript=True)
        s.kernel.clock.fast_forward_enabled = jump
        assert s.run(text.format("20000")) == 0
        logs.append((s.out.getvalue(), s.dmesg(notime=False), s.klp.signals_cnt))
    assert logs[0] == logs[1]


@pytest.mark.parametrize(
    "line, message",
    [
        ("load_lp no_such_module", "unknown module 'no_such_module'"),
        ("load_mod badmod", "badmod.toml: key 'livepatch'"),
        ("bpf_attach kprobe", "usage: bpf_attach TYPE FUNC"),
        ("bpf_attach kprobe cmdline_proc_show --override", "bpf_attach: --override needs RET"),
        ("bpf_attach kprobe_multi a,b+4", "FUNC+OFFSET is for kprobes only"),
        ("load_lp test_klp_livepatch > /dev/kmsg", "'load_lp' cannot be redirected"),
        ("spawn_task x --busy", "spawn_task: --busy needs FUNC"),
        ("loop_until frobnicate", "loop_until: unknown command 'frobnicate'"),
        ("loop_until load_lp test_klp_livepatch", "'load_lp' is not a shell command it can run"),
        ("loop_until sleep nan", "sleep: NUMBER: invalid time interval 'nan'"),
        ("call f 12x", "call: PID: '12x' is not a pid"),
        ("kill", "usage: kill PID"),
    ],
)
def test_late_errors_are_found_before_line_one(tmp_path, line, message):
    (tmp_path / "test_modules").mkdir()
    (tmp_path / "test_modules" / "badmod.toml").write_text('livepatch = "yes"\n')
    path = script(tmp_path, f"log first\nsleep 1\n{line}\n")
    r = klpsim("run", "--dmesg", str(path))
    msg = one_line_error(r)
    assert msg.startswith(f"klpsim: {path}:3: ") and message in msg
    assert r.out == ""  # "log first" never ran


def test_a_newline_from_the_input_is_escaped(tmp_path):
    path = script(tmp_path, "log a\nload_lp 'bad\nname'\n")
    msg = one_line_error(klpsim("run", str(path)))
    assert msg == f"klpsim: {path}:2: 'bad\\nname' is not a module name (letters, digits and '_')"


def test_pid_hint_says_pids_are_deterministic(tmp_path):
    path = script(tmp_path, "spawn_task t\nsleep_task PID cmdline_proc_show\n")
    assert one_line_error(klpsim("run", str(path))) == (
        f"klpsim: {path}:2: sleep_task: PID: 'PID' is not a pid: pids are deterministic "
        "(spawn_task prints each new one, counting from 1001), so write the number"
    )


def test_internal_error_is_one_line_with_its_own_status(monkeypatch, capsys, tmp_path):
    from klpsim import cli
    from klpsim.scenario import runner

    def crash(self, cmd):
        raise KeyError("boom")

    monkeypatch.setattr(runner.Runner, "execute", crash)
    path = script(tmp_path, "log a\n")
    for debug in ([], ["--debug"]):
        monkeypatch.setattr(sys, "argv", ["klpsim", *debug, "run", str(path)])
        with pytest.raises(SystemExit) as e:
            cli.entry()
        assert e.value.code == cli.EX_SOFTWARE == 70
        err = capsys.readouterr().err
        last = err.splitlines()[-1]
        if debug:
            assert "Traceback (most recent call last)" in err
            assert last == "klpsim: internal error: KeyError: 'boom'"
        else:
            assert err == (
                "klpsim: internal error: KeyError: 'boom' (run with --debug for the traceback)\n"
            )
