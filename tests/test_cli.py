"""The command line's own frictions (issue 9), each with the command that shows it fixed."""

import subprocess
import sys

from harness import ROOT, klpsim
from klpsim import __version__


def test_version():
    r = klpsim("--version")
    assert (r.status, r.out) == (0, f"klpsim {__version__}\n")


def test_truth_table_has_its_own_options():
    r = klpsim("truth-table", "--help")
    assert r.status == 0 and r.out.startswith("usage: klpsim truth-table [-h]")
    r = klpsim("truth-table", "--bogus")
    assert (r.status, r.out) == (2, "")
    assert r.err == "klpsim: error: unrecognized arguments: --bogus\n"
    r = klpsim("truth-table")
    assert r.status == 0 and r.out == (ROOT / "docs" / "truth-table.md").read_text()


def test_run_reads_the_script_from_stdin(tmp_path):
    (tmp_path / "test_modules").mkdir()
    (tmp_path / "test_modules" / "lp_x.toml").write_text(
        'livepatch = true\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "cmdline_proc_show", output = "from stdin" }]\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "klpsim", "run", "--kernel", "7.1", "--dmesg", "-"],
        input="load_lp lp_x\ncat /proc/cmdline > /dev/kmsg\n",
        cwd=tmp_path,  # test_modules/ of the current directory, as insmod would see it
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines()[-1] == "from stdin"
    bad = subprocess.run(
        [sys.executable, "-m", "klpsim", "run", "-"],
        input="log a\nlog b | c\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (bad.returncode, bad.stderr) == (
        2,
        "klpsim: <stdin>:2:7: pipes ('|') are not supported: one command a line\n",
    )


def test_stdin_is_read_as_a_file_is():
    # Bytes, not the locale's text: an undecodable byte and a CR are named
    # with their line and column, as they are in a file (test_parser.py).
    for data, where in [
        (b"log a\nlog \xff\n", "2:5: invalid UTF-8 (byte 0xff): this is not a text file"),
        (b"log a\r\n", "1:6: a carriage return (DOS line endings?)"),
    ]:
        r = subprocess.run(
            [sys.executable, "-m", "klpsim", "run", "-"],
            input=data,
            capture_output=True,
            timeout=60,
        )
        assert r.returncode == 2
        assert r.stderr.decode().startswith(f"klpsim: <stdin>:{where}")
        assert r.stderr.count(b"\n") == 1


def test_unknown_config_option_is_refused(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("log a\n")
    r = klpsim("run", "--config", "CONFIG_FOO=y", str(script))
    assert (r.status, r.out) == (2, "")
    assert r.err.startswith("klpsim: --config: unknown option CONFIG_FOO (known: CONFIG_LIVEPATCH,")
    assert r.err.count("\n") == 1
    assert klpsim("run", "--config", "CONFIG_KPROBES=n", str(script)).status == 0


def test_every_config_option_the_model_reads_is_known():
    import re

    from klpsim.livepatch.profiles import all_profiles
    from klpsim.model.system import CONFIG_OPTIONS

    read = set()
    for path in (ROOT / "src" / "klpsim").rglob("*.py"):
        read |= set(re.findall(r'(?:has_config|\bhas)\("([A-Z0-9_]+)"\)', path.read_text()))
    assert read and read <= CONFIG_OPTIONS.keys()
    for profile in all_profiles().values():
        assert profile.config <= CONFIG_OPTIONS.keys(), profile.name


def test_livepatch_keys_without_livepatch_true(tmp_path):
    (tmp_path / "test_modules").mkdir()
    toml = tmp_path / "test_modules" / "lp.toml"
    toml.write_text('[[objects]]\nname = "vmlinux"\nfuncs = [{ old_name = "cmdline_proc_show" }]\n')
    script = tmp_path / "s.sh"
    script.write_text("load_lp lp\n")
    r = klpsim("run", str(script))
    assert r.status == 2
    assert r.err == (
        f"klpsim: {script}:1: {toml}: key 'objects': only livepatch modules have objects "
        "(add 'livepatch = true')\n"
    )
