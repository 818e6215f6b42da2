"""The guest side of the BPF verbs without a guest: the loader builds, the
table it reads says what the module definitions say, and the comparison
keeps what a real kernel shows of ``call`` and ``bpf_attachments``."""

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from harness import ROOT
from klpsim.model.schema import load_definition
from klpsim.real.vm.bpftool import build_klpsim_bpf, livepatch_table
from klpsim.tools.realdiff import normalize_output

SOURCE = resources.files("klpsim.real.vm").joinpath("data", "klpsim-bpf.c")
MODULES = ROOT / "tests" / "scenarios" / "bpf-real" / "test_modules"


def test_loader_builds_warning_free_and_is_cached_by_its_source(tmp_path, monkeypatch):
    assert shutil.which("gcc"), "gcc is needed (apt-get install gcc libc6-dev)"
    p = subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-Wextra", "-o", str(tmp_path / "t"), str(SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0 and p.stderr == "", p.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built = build_klpsim_bpf()
    assert built.parent == tmp_path / "cache" / "klpsim" / "build" / "tools"
    assert built.read_bytes()[:4] == b"\x7fELF"
    mtime = built.stat().st_mtime_ns
    assert build_klpsim_bpf() == built and built.stat().st_mtime_ns == mtime


def test_livepatch_table_lines_come_from_the_definitions():
    defs = [load_definition(MODULES / f"{n}.toml") for n in ("lp_mod_ei", "lp_syncfs", "mod_ei")]
    lines = livepatch_table(defs).splitlines()
    assert lines == [
        "test_klp_livepatch vmlinux cmdline_proc_show livepatch_cmdline_proc_show 0 "
        "test_klp_livepatch: this has been live patched",
        "test_klp_atomic_replace vmlinux meminfo_proc_show livepatch_meminfo_proc_show 0 "
        "test_klp_atomic_replace: this has been live patched",
        # a show function of a module object: its output line
        "lp_mod_ei mod_ei mod_ei_alloc lp_mod_ei_alloc 0 lp_mod_ei: this has been live patched",
        # a syscall: its return value
        "lp_syncfs vmlinux __x64_sys_syncfs lp_syncfs_syncfs 7 -",
    ]


MODEL = """\
call cmdline_proc_show from bash:1000
  kprobe entry on cmdline_proc_show
  ran vmlinux:cmdline_proc_show (the original)
  returned 0
NAME   TYPE    TARGET                PROGRAM       HITS  STATE   NOTE
entry  kprobe  cmdline_proc_show     -             5     active  reports cmdline_proc_show; calls run x:y
ovr    kprobe  mod_ei:mod_ei_alloc   override -12  2     silent  the livepatch's ops is older
body   kprobe  cmdline_proc_show+0xd -             0     silent
lsm: detached
"""
REAL = """\
call cmdline_proc_show from klpsim-bpf:171
  kprobe entry on cmdline_proc_show
  ran vmlinux:cmdline_proc_show (the original)
  returned 0
NAME   TYPE    TARGET                PROGRAM       HITS
entry  kprobe  cmdline_proc_show     -             5
ovr    kprobe  mod_ei:mod_ei_alloc   override -12  2
body   kprobe  cmdline_proc_show+0xd -             0
lsm: detached
"""


def test_comparison_keeps_what_the_kernel_shows():
    assert normalize_output(MODEL) == normalize_output(REAL)
    # hits, programs, order and outcomes are compared
    assert normalize_output(MODEL) != normalize_output(
        REAL.replace("override -12  2", "override -12  3")
    )
    assert normalize_output(MODEL) != normalize_output(REAL.replace("(the original)", "(new_func)"))
    swapped = REAL.replace("entry  kprobe", "ENTRY").replace("ovr    kprobe", "entry  kprobe")
    assert normalize_output(MODEL) != normalize_output(swapped.replace("ENTRY", "ovr    kprobe"))
    # the cut ends with the table: a later line keeps its tail
    assert normalize_output(MODEL + "x  active  NOTE\n").endswith("x  active  NOTE\n")


def test_klpsim_sh_defines_the_bpf_verbs_only_with_the_loader(tmp_path):
    """klpsim.sh gives the verbs when /klp/bin/klpsim-bpf exists; without it
    they stay simulator-only stubs that stop the script."""
    text = resources.files("klpsim.real.vm").joinpath("data", "klpsim.sh").read_text()
    script = tmp_path / "t.sh"
    script.write_text(
        'die() { echo "died: $*"; exit 1; }\n' + text + "type -t bpf_attach\nbpf_attachments\n"
    )
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    # this host has no /klp/bin/klpsim-bpf: the stub
    assert not Path("/klp/bin/klpsim-bpf").exists()
    assert (
        p.stdout
        == "function\ndied: bpf_attachments: simulator-only verb, not available on a real kernel\n"
    )


def test_comparable_drops_setup_config_behind_boot_messages():
    # 6.1's functions.sh logs no canary: setup_config's line is dropped even
    # when a guest's first script follows the boot messages (seen cold on 6.1).
    from klpsim.tools.realdiff import comparable

    guest = [
        "random: crng init done",
        "livepatch: kernel.ftrace_enabled = 1",
        "livepatch: enabling patch 'lp'",
        "livepatch: kernel.ftrace_enabled = 1",
    ]
    assert comparable(guest, from_guest=True) == guest[2:]
    assert comparable(guest, from_guest=False) == guest[1:]
