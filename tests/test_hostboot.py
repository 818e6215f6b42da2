"""The model boots into a host snapshot (hostboot.py): ``klpsim run
--snapshot`` and ``Session.from_snapshot``. Snapshots are collected from fake
host trees (fakehost.py) by the Python collector, as on a host."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from fakehost import FakeHost, run_python, standard_host
from harness import klpsim
from klpsim.artifacts.snapshot import read_snapshot
from klpsim.hostboot import HostBootError, choose_profile
from klpsim.session import Session
from test_inspect import klp_patch_module

KALLSYMS = [
    "ffffffff81000000 T _text",
    "ffffffff81234560 t cmdline_proc_show",
    "ffffffff81234600 t version_proc_show",
    "ffffffff81434600 T meminfo_proc_show",
    "ffffffff81434700 T schedule",
    "ffffffff81434800 T do_nanosleep",
    "ffffffffc0a00000 t tgt_wait\t[tgt]",
]


def collect(h: FakeHost, tmp_path: Path, name: str = "s.tar.gz") -> Path:
    out = tmp_path / name
    r = run_python(h.root, out)
    assert r.returncode == 0, r.stderr
    return out


def boot(path: Path, profile: str | None = None) -> Session:
    return Session.from_snapshot(read_snapshot(path), profile)


def small_host(tmp_path: Path, **kw) -> FakeHost:
    """One patch from a real-layout .ko (lp_mini: cmdline_proc_show, states 5 v2),
    a target module, a task asleep in the patched function, a kprobe."""
    h = FakeHost(tmp_path / "host", release=kw.pop("release", "6.12.0-fake"))
    h.module("tgt", refcnt=0)
    h.module("lp_mini", refcnt=0, taints="OEK")
    funcs = {"vmlinux": ["cmdline_proc_show,1", "version_proc_show,1"], "nfs": ["nfs_permission,1"]}
    h.patch("lp_mini", funcs, replace=0, patched={"nfs": 0}, **kw)
    h.task(1, 1, "init", stack=["do_nanosleep+0x6b/0x190", "schedule+0x1/0x40"], patch_state=-1)
    h.task(
        50,
        50,
        "reader",
        stack=["schedule+0x20/0x40", "livepatch_cmdline_proc_show+0x10/0x40 [lp_mini]"],
        patch_state=-1,
    )
    h.task(60, 60, "kwait", kthread=True, stack=["schedule+0x20/0x40", "tgt_wait+0x8/0x40 [tgt]"])
    h.kallsyms([*KALLSYMS, "ffffffffc0c00000 t livepatch_cmdline_proc_show\t[lp_mini]"])
    h.write("sys/kernel/debug/kprobes/list", "ffffffffc0a00000  k  tgt_wait+0x0  tgt [FTRACE]\n")
    h.write(f"lib/modules/{h.release}/updates/lp_mini.ko.xz", lzma.compress(klp_patch_module(0)))
    return h


def test_boot_into_a_snapshot_loads_its_patches_through_the_loader(tmp_path):
    s = boot(collect(small_host(tmp_path), tmp_path))
    host = s.host
    assert host is not None and host.profile == "6.12" and host.from_ko == {"lp_mini": True}
    assert host.profile_why == "sysfs: the patches have replace (6.11+) but no stack_order"
    assert [p.name for p in s.klp.patches] == ["lp_mini"]
    assert s.klp.patches[0].states[0].id == 5  # from the .ko, not from sysfs
    assert s.kernel.fs.read("/sys/kernel/livepatch/lp_mini/replace") == "0\n"
    assert "livepatch: 'lp_mini': patching complete" in s.dmesg()
    # the host's tasks with their stacks, innermost last (the model's order)
    reader = s.kernel.sched.tasks[50]
    assert [f"{x.owner.name}:{x.name}" for x in reader.stack] == [
        "lp_mini:livepatch_cmdline_proc_show",
        "vmlinux:schedule",
    ]
    assert s.kernel.sched.tasks[60].is_kthread and s.kernel.sched.tasks[60].reliable
    # the model's own boot tasks are gone; the shell stays, on a free pid
    comms = sorted(t.comm for t in s.kernel.sched.tasks.values())
    assert comms == ["bash", "init", "kwait", "reader"]
    # the kprobe, through kprobe_events, enabled
    assert host.kprobes == ["p:klpsim/snap_0 tgt:tgt_wait"]
    assert [kp.symbol_name for kp in s.system.kprobes.probes] == ["tgt_wait"]
    assert s.kernel.fs.read("/sys/kernel/tracing/events/klpsim/snap_0/enable") == "1\n"
    # the patched function runs the patch
    assert s.kernel.fs.read("/proc/cmdline") == "lp_mini:livepatch_cmdline_proc_show\n"


def test_a_patch_without_its_ko_comes_from_sysfs_and_says_what_is_unknown(tmp_path):
    s = boot(collect(standard_host(tmp_path / "host"), tmp_path))
    host = s.host
    assert host is not None and [p.name for p in s.klp.patches] == ["lp_a", "lp_b", "lp_c"]
    assert host.from_ko == {"lp_a": False, "lp_b": False, "lp_c": False}
    assert (
        "lp_c: no .ko in the snapshot: its states and new function names are unknown "
        "(taken as: no states)" in host.unknowns
    )
    assert any(u.startswith("lp_a: its .ko is unreadable (") for u in host.unknowns)
    # sysfs shows sympos 1 for 0: the only version_proc_show? no, two: it keeps 2
    funcs = {f.old_name: f.old_sympos for o in host.patches[0].objects for f in o.funcs}
    assert funcs == {"nfs_permission": 0, "cmdline_proc_show": 0, "version_proc_show": 2}
    # lp_c was in transition: it still is, with the host's per-task states
    assert s.klp.transition_patch is not None and s.klp.transition_patch.name == "lp_c"
    t42, t1 = s.kernel.sched.tasks[42], s.kernel.sched.tasks[1]
    assert (t42.patch_state, t42.patch_pending) == (0, True)
    assert (t1.patch_state, t1.patch_pending) == (1, False)
    # lp_old, replaced but loaded: a plain module from kallsyms? it has no symbols:
    # it is not in /sys/kernel/livepatch, and nothing loads it as a patch
    assert "lp_old" not in [p.name for p in s.klp.patches]


def test_an_unknown_stack_may_block(tmp_path):
    h = small_host(tmp_path, transition=1)
    h.task(70, 70, "secret", stack=None, patch_state=0)  # no stack file: unknown
    h.task(50, 50, "reader", stack=["schedule+0x20/0x40"], patch_state=1)
    s = boot(collect(h, tmp_path))
    assert s.host is not None and s.host.unknown_stacks == [70]
    assert not s.kernel.sched.tasks[70].reliable
    s.run("klp_blocking\n")
    out = s.out.getvalue()
    assert "70 secret: its stack trace is not reliable" in out, out


@pytest.mark.parametrize(
    ("attrs", "release", "profile"),
    [
        ({"replace_set": 1, "stack_order": 1}, "6.12.117-klpsim-rs-394d6d63", "replace-set"),
        ({"replace": 1, "stack_order": 1}, "6.15.0", "7.1"),
        ({"replace": 1}, "6.12.0", "6.12"),
        ({}, "6.1.0-56-amd64", "6.1"),
    ],
)
def test_the_profile_follows_the_attributes(tmp_path, attrs, release, profile):
    h = FakeHost(tmp_path / "host", release=release)
    h.module("lp", taints="OEK")
    h.patch("lp", {"vmlinux": ["cmdline_proc_show,1"]}, **attrs)
    h.kallsyms(KALLSYMS)
    assert choose_profile(read_snapshot(collect(h, tmp_path)))[0] == profile


@pytest.mark.parametrize(
    ("release", "profile"),
    [("6.12.117-klpsim-rs-394d6d63", "replace-set"), ("6.14.2", "7.1"),
     ("6.12.117+deb12-amd64", "6.12"), ("6.1.0-57-amd64", "6.1")],
)  # fmt: skip
def test_without_patches_uname_r_chooses(tmp_path, release, profile):
    h = FakeHost(tmp_path / "host", release=release)
    h.kallsyms(KALLSYMS)
    assert choose_profile(read_snapshot(collect(h, tmp_path)))[0] == profile


def test_kernel_given_wins(tmp_path):
    s = boot(collect(small_host(tmp_path), tmp_path), "7.1")
    assert s.host is not None and s.host.profile == "7.1"
    assert s.host.profile_why == "given with --kernel"


def test_a_host_state_the_model_refuses_is_one_line(tmp_path):
    h = small_host(tmp_path)
    h.patch("lp_two", {"vmlinux": ["no_such_function,1"]}, replace=0)
    h.module("lp_two", taints="OEK")
    with pytest.raises(HostBootError, match=r"the host's livepatch lp_two does not load"):
        boot(collect(h, tmp_path))


def test_run_snapshot(tmp_path):
    snap = collect(small_host(tmp_path), tmp_path)
    script = tmp_path / "s.sh"
    script.write_text("cat /proc/cmdline\ncat /sys/kernel/livepatch/lp_mini/enabled\n")
    r = klpsim("run", "--snapshot", str(snap), "--dmesg", str(script))
    assert r.status == 0, r.err
    assert r.err.splitlines()[0] == (
        f"klpsim: snapshot {snap}: kernel 6.12 (sysfs: the patches have replace (6.11+) "
        "but no stack_order)"
    )
    assert "livepatch: 'lp_mini': patching complete" in r.out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x1f\x8b\x08\x00truncated", "klpsim: {path}: "),
        (None, "klpsim: {path}: No such file or directory"),
    ],
)
def test_run_snapshot_bad_input(tmp_path, content, message):
    path = tmp_path / "bad.tar.gz"
    if content is not None:
        path.write_bytes(content)
    script = tmp_path / "s.sh"
    script.write_text("true\n")
    r = klpsim("run", "--snapshot", str(path), str(script))
    assert r.status == 2 and r.out == ""
    assert len(r.err.splitlines()) == 1 and r.err.startswith(message.format(path=path)), r.err


def test_a_ko_that_is_not_the_loaded_build_is_not_used(tmp_path):
    h = small_host(tmp_path)
    h.patch("lp_mini", {"vmlinux": ["cmdline_proc_show,1"]}, replace=0)  # sysfs: one function
    import shutil

    shutil.rmtree(h.root / "sys/kernel/livepatch/lp_mini/nfs")
    shutil.rmtree(h.root / "sys/kernel/livepatch/lp_mini/vmlinux/version_proc_show,1")
    s = boot(collect(h, tmp_path))
    assert s.host is not None and s.host.from_ko == {"lp_mini": False}
    assert (
        f"lp_mini: /lib/modules/{h.release}/updates/lp_mini.ko.xz patches other functions than "
        "sysfs shows (another build): its states and new function names are unknown "
        "(taken as: no states)" in s.host.unknowns
    ), s.host.unknowns
    # the sleeping task's frame in lp_mini cannot be named: its stack is unknown
    assert s.host.unknown_stacks == [50]


def test_ftrace_users_not_recreated_are_named(tmp_path):
    h = small_host(tmp_path)
    h.write(
        "sys/kernel/tracing/enabled_functions",
        "cmdline_proc_show (1)   I     M \ttramp: 0xffffffffc02cb000 "
        "(klp_ftrace_handler+0x0/0x100) ->klp_ftrace_handler+0x0/0x100\n"
        "version_proc_show (1)   I     M \ttramp: 0xffffffffc02cb000 "
        "(klp_ftrace_handler+0x0/0x100) ->klp_ftrace_handler+0x0/0x100\n"
        "schedule (1) R         \ttramp: 0xffffffffc02c9000 "
        "(function_trace_call+0x0/0x1d0) ->function_trace_call+0x0/0x1d0\n"
        "tgt_wait [tgt] (1) R         \ttramp: 0xffffffffc02c5000 "
        "(kprobe_ftrace_handler+0x0/0x1d0) ->kprobe_ftrace_handler+0x0/0x1d0\n",
    )
    s = boot(collect(h, tmp_path))
    assert s.host is not None
    # the kprobe on a module function of the real table shows in the model's list too
    shown = s.kernel.fs.read("/sys/kernel/tracing/enabled_functions")
    assert "tgt_wait [tgt] (1) R" in shown
    ftrace = [u for u in s.host.unknowns if u.startswith("ftrace: ")]
    assert ftrace == [
        "ftrace: schedule has 1 user(s) on the host, 0 in the model: the others "
        "(a tracer, another ftrace_ops) are not recreated"
    ]
