"""Host snapshots: the two collectors agree, write nothing else, and the reader
turns their archive (or a sosreport, or a supportconfig) into typed data.

The collectors run against fake trees (tests/fakehost.py) through their
testing root; the sh collector runs under dash and under busybox ash.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from fakehost import FAKE_KO, FakeHost, members, run_python, run_sh, shells, standard_host
from harness import klpsim
from klpsim.artifacts.snapshot import Unknown, read_snapshot
from klpsim.tools.snapshot import python_collector_text, script_text

SHELLS = shells()


@pytest.fixture
def host(tmp_path) -> FakeHost:
    return standard_host(tmp_path / "host")


def collect_py(host: FakeHost, out: Path) -> Path:
    r = run_python(host.root, out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{out}\n" and r.stderr == ""
    return out


# ------------------------------------------------------------- agreement


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_sh_and_python_collectors_write_the_same_archive(host, tmp_path, shell):
    py = collect_py(host, tmp_path / "py.tar.gz")
    sh = tmp_path / "sh.tar.gz"
    r = run_sh(SHELLS[shell], host.root, sh)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    a, b = members(py), members(sh)
    assert [m[0] for m in a] == [m[0] for m in b]
    assert a == b
    with tarfile.open(sh) as tf:
        manifest = tf.extractfile("klpsim-snapshot/MANIFEST").read().decode()
    assert "collector: sh\n" in manifest


def test_archive_layout_and_manifest(host, tmp_path):
    out = collect_py(host, tmp_path / "s.tar.gz")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = tf.extractfile("klpsim-snapshot/MANIFEST").read().decode()
    assert names[0] == "klpsim-snapshot" and names[-1] == "klpsim-snapshot/MANIFEST"
    assert all(n == "klpsim-snapshot" or n.startswith("klpsim-snapshot/") for n in names)
    for rel in (
        "proc/sys/kernel/osrelease",
        "proc/modules",
        "sys/kernel/livepatch/lp_a/enabled",
        "sys/kernel/livepatch/lp_a/vmlinux/version_proc_show,2",
        "sys/module/lp_b/holders/lp_c",
        "proc/42/task/42/stat",
        "proc/kallsyms",
        "sys/kernel/debug/fail_function/injectable",
        "lib/modules/6.12.0-fake/updates/lp-a.ko.xz",
    ):
        assert f"klpsim-snapshot/{rel}" in names, rel
    assert "klpsim-snapshot/lib/modules/6.12.0-fake/kernel/fs/ext4.ko.zst" not in names
    lines = manifest.splitlines()
    assert lines[0] == "format: klpsim-snapshot 1"
    assert lines[2] == "collector: python"
    assert lines[4:8] == ["release: 6.12.0-fake", "uid: 0", "root: yes", "kallsyms-addresses: real"]
    expected_items = [
        "item: proc/90 vanished",
        "item: proc/42/task/44 vanished",
        "item: sys/kernel/tracing/enabled_functions collected",
        "ko: lp_a collected lib/modules/6.12.0-fake/updates/lp-a.ko.xz",
        "ko: lp_b collected lib/modules/6.12.0-fake/updates/lp_b.ko",
        "ko: lp_c absent not-found",
        "ko: lp_old absent not-found",
    ]
    for line in expected_items:
        assert line in lines, line
    # Patch modules in sysfs order, then the K-tainted one sysfs no longer lists.
    assert [ln.split()[1] for ln in lines if ln.startswith("ko: ")] == [
        "lp_a",
        "lp_b",
        "lp_c",
        "lp_old",
    ]


def test_sh_collector_handles_long_names_and_odd_bytes(tmp_path):
    h = FakeHost(tmp_path / "host")
    h.module("lp_long", refcnt=1, taints="OEK")
    long_func = "a_function_with_a_really_long_name_" * 5 + ",3"
    h.patch("lp_long", {"vmlinux": [long_func]})
    h.task(5, 5, "caf\u00e9 \\ \t*?[x]", stack=["x+0x1/0x2"], patch_state=-1)
    h.task(6, 6, "raw\udcff byte", stack=["x+0x1/0x2"], patch_state=-1)
    py = collect_py(h, tmp_path / "py.tar.gz")
    for shell in SHELLS.values():
        sh = tmp_path / "sh.tar.gz"
        r = run_sh(shell, h.root, sh, "--force")
        assert r.returncode == 0, r.stderr
        assert members(py) == members(sh)
    snap = read_snapshot(py)
    assert snap.livepatches[0].objects[0].funcs[0].name == long_func[:-2]
    assert {t.comm for t in snap.tasks} == {"caf\u00e9 \\ \t*?[x]", "raw\udcff byte"}


# ------------------------------------------------------------ write nothing


def _listing(top: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[str(p.relative_to(top))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def readonly_host(host, tmp_path):
    """The fake tree bind-mounted read-only (we are root: the tier needs it)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(host.root), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize("collector", ["python", *sorted(SHELLS)])
def test_collectors_write_nothing_but_their_output(readonly_host, tmp_path, collector):
    cwd = tmp_path / "cwd"
    scratch = tmp_path / "scratch"  # TMPDIR and HOME: nothing may land there either
    for d in (cwd, scratch):
        d.mkdir()
    (cwd / "keep.txt").write_text("the user's file\n")
    before = {"cwd": _listing(cwd), "tree": _listing(readonly_host), "scratch": _listing(scratch)}
    env = dict(os.environ, TMPDIR=str(scratch), HOME=str(scratch))
    tools = tmp_path / "tools"
    tools.mkdir()
    if collector == "python":
        r = run_python(readonly_host, tools / "out.tar.gz", cwd=cwd, env=env)
        # Without -o: the default name, in the current directory.
        r = subprocess.run(
            [sys.executable, str(tools / "collector.py"), "--root", str(readonly_host)],
            cwd=cwd, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    else:
        run_sh(SHELLS[collector], readonly_host, tools / "out.tar.gz", env=env, cwd=cwd)
        r = subprocess.run(
            [*SHELLS[collector], str(tools / "klpsim-snapshot.sh")],
            cwd=cwd, env=dict(env, KLPSIM_ROOT=str(readonly_host)),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    assert name.startswith("klpsim-snapshot-fakehost-") and name.endswith(".tar.gz")
    after = {"cwd": _listing(cwd), "tree": _listing(readonly_host), "scratch": _listing(scratch)}
    assert after["tree"] == before["tree"]
    assert after["scratch"] == before["scratch"] == {}
    assert set(after["cwd"]) == set(before["cwd"]) | {name}
    assert after["cwd"]["keep.txt"] == before["cwd"]["keep.txt"]
    assert read_snapshot(cwd / name).release == "6.12.0-fake"


@pytest.mark.parametrize("collector", ["python", *sorted(SHELLS)])
def test_an_existing_file_is_kept_unless_force(host, tmp_path, collector):
    out = tmp_path / "snap.tar.gz"
    out.write_bytes(b"precious")

    def run(*extra):
        if collector == "python":
            return run_python(host.root, out, *extra)
        return run_sh(SHELLS[collector], host.root, out, *extra)

    r = run()
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert f"{out}: exists (use --force to overwrite)" in r.stderr
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    r = run("--force")
    assert r.returncode == 0, r.stderr
    assert read_snapshot(out).kind == "klpsim"


@pytest.mark.parametrize("collector", ["python", *sorted(SHELLS)])
def test_stdout_output(host, tmp_path, collector):
    """``-o -``: the archive goes to stdout and nothing is written at all."""
    if collector == "python":
        script = tmp_path / "collector.py"
        script.write_text(python_collector_text())
        cmd = [sys.executable, str(script), "--root", str(host.root), "-o", "-"]
    else:
        script = tmp_path / "s.sh"
        script.write_text(script_text())
        cmd = [*SHELLS[collector], str(script), "-o", "-"]
    env = dict(os.environ, KLPSIM_ROOT=str(host.root))
    r = subprocess.run(cmd, capture_output=True, check=False, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert "klpsim-snapshot/MANIFEST" in tf.getnames()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["host", script.name])


# ------------------------------------------------------------------ non-root


@pytest.fixture
def world_tmp():
    """A temporary directory uid 65534 can reach (pytest's own is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="klpsim-snapshot-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_not_root_records_what_it_could_not_read(world_tmp):
    """Both collectors as uid 65534: stacks and debugfs unreadable, force write-only."""
    tmp_path = world_tmp
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    assert python and setpriv, "needs Debian's /usr/bin/python3 and setpriv (util-linux)"
    h = standard_host(tmp_path / "host", zero_addresses=True)
    (h.root / "sys/kernel/debug").chmod(0o700)  # as debugfs is
    for p in [tmp_path, *tmp_path.rglob("*")]:
        if not p.is_symlink() and p.name not in ("stack", "force", "debug"):
            p.chmod(p.stat().st_mode | 0o005)
    out_dir = tmp_path / "out"
    out_dir.mkdir(mode=0o777)
    out_dir.chmod(0o777)
    nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    r = run_python(h.root, out_dir / "py.tar.gz", python=python)  # writes collector.py
    (out_dir / "py.tar.gz").unlink()
    r = subprocess.run(
        [*nobody, python, str(out_dir / "collector.py"), "--root", str(h.root),
         "-o", str(out_dir / "np.tar.gz")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    results = [out_dir / "np.tar.gz"]
    for name, shell in SHELLS.items():
        out = out_dir / f"{name}.tar.gz"
        r = run_sh([*nobody, *shell], h.root, out)
        assert r.returncode == 0, r.stderr
        results.append(out)
    for other in results[1:]:
        assert members(other) == members(results[0])
    with tarfile.open(results[0]) as tf:
        manifest = tf.extractfile("klpsim-snapshot/MANIFEST").read().decode().splitlines()
    assert "root: no" in manifest and "uid: 65534" in manifest
    assert "kallsyms-addresses: zero" in manifest
    assert "item: sys/kernel/livepatch/lp_a/force unreadable write-only" in manifest
    assert "item: proc/1/task/1/stack unreadable not-root" in manifest
    assert "item: sys/kernel/debug/kprobes/list unreadable not-root" in manifest
    assert "item: sys/kernel/tracing/enabled_functions collected" in manifest

    snap = read_snapshot(results[0])
    assert snap.manifest.root is False
    assert snap.kallsyms.addresses_known is False
    assert [s.name for s in snap.kallsyms.lookup("version_proc_show", None)] == [
        "version_proc_show",
        "version_proc_show",
    ]
    t = next(t for t in snap.tasks if t.tid == 1)
    assert t.stack == Unknown("/proc/1/task/1/stack: unreadable without root")
    assert t.patch_state == 1
    assert snap.kprobes == Unknown("/sys/kernel/debug/kprobes/list: unreadable without root")
    assert "force" in snap.livepatch("lp_a").attributes
    assert "stacks of 6 of 6 tasks: unreadable without root" in snap.missing
    assert "kallsyms addresses: all zero, read without root (names and order kept)" in snap.missing


# ------------------------------------------------------------------ the reader


def test_reader_gives_the_hosts_state(host, tmp_path):
    snap = read_snapshot(collect_py(host, tmp_path / "s.tar.gz"))
    assert snap.kind == "klpsim" and snap.release == "6.12.0-fake"
    assert snap.ftrace_enabled is True and snap.tainted == 45056
    # No stack_order: /proc/modules (newest first) gives the load order.
    assert [p.name for p in snap.livepatches] == ["lp_a", "lp_b", "lp_c"]
    assert snap.patch_order.source == "proc-modules"
    a, b, c = snap.livepatches
    assert (a.enabled, a.transition, a.replace) == (True, False, True)
    assert c.transition is True
    assert a.attributes == {"enabled", "transition", "force", "replace"}
    assert a.stack_order == Unknown(
        "/sys/kernel/livepatch/lp_a/stack_order: not on this kernel (6.14+)"
    )
    assert [(o.name, o.patched, [(f.name, f.sympos) for f in o.funcs]) for o in a.objects] == [
        ("nfs", True, [("nfs_permission", 1)]),
        ("vmlinux", True, [("cmdline_proc_show", 1), ("version_proc_show", 2)]),
    ]
    assert [(o.name, o.patched) for o in b.objects] == [("vmlinux", True), ("xfs", False)]

    lp_b, lp_old, ext4 = (snap.module(n) for n in ("lp_b", "lp_old", "ext4"))
    assert lp_b.holders == ("lp_c",) and lp_b.livepatch and lp_b.taints == "OEK"
    assert lp_old.livepatch and lp_old.refcnt == 0 and lp_old.holders == ()
    assert ext4.used_by == ("jbd2",) and not ext4.livepatch
    assert isinstance(ext4.holders, Unknown)

    tasks = {t.tid: t for t in snap.tasks}
    assert sorted(tasks) == [1, 2, 42, 43, 77, 78]
    assert tasks[42].comm == "a b) (c" and tasks[42].pid == 42 and tasks[42].kthread is False
    assert tasks[42].stack[0].function == "cmdline_proc_show"
    assert tasks[42].stack[0][1:4] == (0x10, 0x40, None)
    assert tasks[43].stack == () and tasks[43].state == "D" and tasks[43].pid == 42
    assert tasks[77].kthread is True and tasks[77].state == "I"
    assert tasks[77].stack[0][:4] == ("xfs_foo", 5, 0x80, "xfs")
    assert tasks[77].stack[1].function is None and tasks[77].stack[1].text == "0xffffffffc0a01234"
    assert tasks[78].comm == "nl\ncomm"
    assert [t.patch_state for t in snap.tasks] == [1, 1, 0, 0, 1, 1]

    assert [(k.symbol, k.kind, k.module, sorted(k.flags)) for k in snap.kprobes] == [
        ("cmdline_proc_show", "k", None, ["FTRACE"]),
        ("xfs_foo", "r", "xfs", ["DISABLED", "FTRACE"]),
        ("meminfo_proc_show", "k", None, []),
    ]
    assert snap.kprobes[2].offset == 0x10 and snap.kprobes[0].address == 0xFFFFFFFF81234560
    f = {r.function: r for r in snap.ftrace}
    assert f["cmdline_proc_show"].flags == {"R", "I", "M"} and f["cmdline_proc_show"].refcount == 2
    assert f["cmdline_proc_show"].calls == ("klp_ftrace_handler+0x0/0x1e0",)
    assert f["xfs_foo"].module == "xfs" and f["xfs_foo"].flags == {"R", "D", "M"}
    assert f["xfs_foo"].direct == "bpf_trampoline_6442+0x0/0x100"
    assert [(e.function, e.type) for e in snap.injectable] == [("should_failslab", "ERRNO")]

    assert [(k.module, k.path, k.compression) for k in snap.ko_files] == [
        ("lp_a", "lib/modules/6.12.0-fake/updates/lp-a.ko.xz", "xz"),
        ("lp_b", "lib/modules/6.12.0-fake/updates/lp_b.ko", None),
    ]
    assert snap.ko("lp_a").decompressed() == FAKE_KO == snap.ko("lp_b").decompressed()
    assert snap.ko("lp_a").data == lzma.compress(FAKE_KO)
    ks = snap.kallsyms
    assert ks.count("version_proc_show") == 2 and ks.count("version_proc_show", "lp_a") == 1
    assert [s.address for s in ks.lookup("version_proc_show", None)] == [
        0xFFFFFFFF81234600,
        0xFFFFFFFF81334600,
    ]
    assert ".ko of lp_c: absent not-found" in snap.missing
    assert "stacks of 6 of 6 tasks" not in " ".join(snap.missing)


def test_stack_order_gives_the_order(tmp_path):
    h = FakeHost(tmp_path / "host")
    for name, order in (("p1", 2), ("p2", 1), ("p3", 3)):
        h.module(name, refcnt=1, taints="OEK")
        h.patch(name, {"vmlinux": [f"{name}_f,1"]}, replace=0, stack_order=order)
    snap = read_snapshot(collect_py(h, tmp_path / "s.tar.gz"))
    assert [p.name for p in snap.livepatches] == ["p2", "p1", "p3"]
    assert snap.patch_order.source == "stack_order"


def test_replace_set_attribute(tmp_path):
    h = FakeHost(tmp_path / "host")
    h.module("rs", refcnt=1, taints="OEK")
    h.patch("rs", {"vmlinux": ["f,1"]}, replace_set=3, stack_order=1)
    p = read_snapshot(collect_py(h, tmp_path / "s.tar.gz")).livepatches[0]
    assert p.replace_set == 3 and isinstance(p.replace, Unknown)
    assert "replace_set" in p.attributes and "replace" not in p.attributes


def test_order_unknown_without_stack_order_or_module_list(host, tmp_path):
    (host.root / "proc/modules").unlink()
    snap = read_snapshot(collect_py(host, tmp_path / "s.tar.gz"))
    assert snap.patch_order.source == "unknown"
    assert isinstance(snap.modules, Unknown)
    assert any(line.startswith("patch order: sysfs name order") for line in snap.missing)


def test_order_from_kallsyms_when_proc_modules_is_unknown(tmp_path):
    # Seen in planvm (6.12, seed 66643, case 20): sympos1 patches m_show(),
    # lp4 then lp1 both patch loadavg_proc_show; sysfs name order put lp4 on
    # top. /proc/kallsyms walks the module list too, newest module first.
    h = FakeHost(tmp_path / "host")
    for name in ("lp4", "lp1", "sympos1"):  # loaded in this order
        h.module(name, refcnt=1, taints="OEK")
        h.patch(name, {"vmlinux": ["loadavg_proc_show,1"]}, replace=0)
    h.write("proc/modules", "sympos1: this has been live patched\n")
    h.kallsyms(
        [
            "ffffffff81234560 t loadavg_proc_show",
            "ffffffffc0e00000 t livepatch_m_show\t[sympos1]",
            "ffffffffc0d00000 t livepatch_loadavg_proc_show\t[lp1]",
            "ffffffffc0c00000 t livepatch_loadavg_proc_show\t[lp4]",
            "ffffffffc0b00000 t ftrace_trampoline\t[__builtin__ftrace]",
        ]
    )
    snap = read_snapshot(collect_py(h, tmp_path / "s.tar.gz"))
    assert isinstance(snap.modules, Unknown)
    assert snap.patch_order.source == "kallsyms"
    assert [p.name for p in snap.livepatches] == ["lp4", "lp1", "sympos1"]
    assert not any(line.startswith("patch order:") for line in snap.missing)


def test_a_proc_modules_a_livepatch_rewrote_is_unknown(host, tmp_path):
    # Seen in planvm (6.12, seed 12, case 7): the fuzz pool's sympos patch
    # replaces m_show(), so the host's /proc/modules holds its lines.
    (host.root / "proc/modules").write_text("test_klp_fz_sympos1: this has been live patched\n")
    snap = read_snapshot(collect_py(host, tmp_path / "s.tar.gz"))
    assert isinstance(snap.modules, Unknown)
    assert "is m_show() patched?" in snap.modules.reason
    assert snap.livepatches  # the rest of the snapshot stands


def test_a_kernel_without_livepatch(tmp_path):
    """No /sys/kernel/livepatch and no /proc/modules (no CONFIG_LIVEPATCH, no CONFIG_MODULES)."""
    h = FakeHost(tmp_path / "host")
    shutil.rmtree(h.root / "sys/kernel/livepatch")
    snap = read_snapshot(collect_py(h, tmp_path / "s.tar.gz"))
    assert snap.livepatches == () and snap.patch_order.source == "none"
    assert snap.notes == (
        "no livepatches: the host has no /sys/kernel/livepatch (no CONFIG_LIVEPATCH)",
    )
    assert snap.modules == Unknown("/proc/modules: not on the host")


def test_livepatch_sysfs_unreadable_and_no_module_list(tmp_path):
    h = FakeHost(tmp_path / "host")
    out = collect_py(h, tmp_path / "s.tar.gz")
    edited = tmp_path / "e.tar.gz"
    with tarfile.open(out) as src, tarfile.open(edited, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name.endswith("/MANIFEST"):
                data = data.replace(
                    b"item: sys/kernel/livepatch collected", b"item: sys/kernel/livepatch vanished"
                )
                m.size = len(data)
            if "/sys/kernel/livepatch" not in m.name:
                dst.addfile(m, io.BytesIO(data) if data is not None else None)
    msg = one_line(klpsim("snapshot", "--show", str(edited)))
    assert msg == (
        f"klpsim snapshot: {edited}: holds no livepatch data "
        "(no /sys/kernel/livepatch, no module list)"
    )


def test_debugfs_not_mounted(host, tmp_path):
    host.mounts(debugfs=False, tracefs=False)
    shutil.rmtree(host.root / "sys/kernel/debug")
    shutil.rmtree(host.root / "sys/kernel/tracing")
    snap = read_snapshot(collect_py(host, tmp_path / "s.tar.gz"))
    assert snap.kprobes == Unknown("/sys/kernel/debug/kprobes/list: debugfs was not mounted")
    assert snap.ftrace == Unknown(
        "/sys/kernel/tracing/enabled_functions: tracefs was not mounted; "
        "/sys/kernel/debug/tracing/enabled_functions: debugfs was not mounted"
    )


def test_an_unpacked_snapshot_reads_the_same(host, tmp_path):
    out = collect_py(host, tmp_path / "s.tar.gz")
    with tarfile.open(out) as tf:
        tf.extractall(tmp_path / "unpacked", filter="tar")
    a = read_snapshot(out)
    gnu = tmp_path / "gnu.tar.gz"  # repacked by GNU tar (GNU long names)
    subprocess.run(["tar", "-C", tmp_path / "unpacked", "-czf", gnu, "klpsim-snapshot"], check=True)
    pax = tmp_path / "pax.tar.xz"  # by Python, xz and pax headers: tarfile reads those
    with tarfile.open(pax, "w:xz", format=tarfile.PAX_FORMAT) as tf:
        tf.add(tmp_path / "unpacked/klpsim-snapshot", "klpsim-snapshot")
        info = tarfile.TarInfo("klpsim-snapshot/caf\u00e9")  # forces a pax header
        tf.addfile(info, io.BytesIO(b""))
    sources = [tmp_path / "unpacked", tmp_path / "unpacked/klpsim-snapshot", gnu, pax]
    for d in sources:
        b = read_snapshot(d)
        for field in a._fields:
            if field not in ("source", "kallsyms"):
                assert getattr(a, field) == getattr(b, field), field
        assert list(a.kallsyms) == list(b.kallsyms)


def test_show(host, tmp_path):
    out = collect_py(host, tmp_path / "s.tar.gz")
    r = klpsim("snapshot", "--show", str(out))
    assert r.status == 0 and r.err == ""
    lines = r.out.splitlines()
    assert lines[0].startswith(f"snapshot:  {out} (klpsim format 1, python collector, klpsim ")
    assert lines[1] == f"           collected from the test tree {host.root}"
    assert lines[2:9] == [
        "kernel:    6.12.0-fake  ftrace_enabled=1  tainted=45056",
        "livepatches: 3 (order: proc-modules)",
        "  1. lp_a  enabled=1 transition=0 replace=1",
        "       nfs (patched=1): nfs_permission,1",
        "       vmlinux (patched=1): cmdline_proc_show,1 version_proc_show,2",
        "  2. lp_b  enabled=1 transition=0 replace=0",
        "       vmlinux (patched=1): cmdline_proc_show,1",
    ]
    assert "modules:   6 loaded, 4 livepatch modules" in lines
    assert "  lp_b  refcnt=1 holders=lp_c state=Live" in lines
    assert "kallsyms:  13 symbols (addresses: real)" in lines
    assert "tasks:     6 threads, 2 kthreads; patch_state 0: 2, 1: 4; stacks known for 6" in lines
    assert "  - .ko of lp_old: absent not-found" in lines


def test_print_script_is_the_package_script_stamped():
    r = klpsim("snapshot", "--print-script")
    assert r.status == 0 and r.out == script_text()
    assert r.out.startswith("#!/bin/sh\n")
    assert "@KLPSIM_VERSION@" not in r.out and "VERSION='0.1.0'" in r.out


# --------------------------------------------------------------- bad snapshots


def one_line(r) -> str:
    assert r.status == 2, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    return lines[0]


def test_truncated_archive(host, tmp_path):
    out = collect_py(host, tmp_path / "s.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    msg = one_line(klpsim("snapshot", "--show", str(cut)))
    assert msg.startswith(f"klpsim snapshot: {cut}: truncated or corrupt archive")


def test_archive_missing_a_collected_member(host, tmp_path):
    out = collect_py(host, tmp_path / "s.tar.gz")
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(out) as src, tarfile.open(edited, "w:gz") as dst:
        for m in src.getmembers():
            if not m.name.endswith("/proc/modules"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    msg = one_line(klpsim("snapshot", "--show", str(edited)))
    assert msg == (
        f"klpsim snapshot: {edited}: MANIFEST lists /proc/modules as collected but the "
        "snapshot lacks it (truncated or edited)"
    )


def test_archive_without_manifest(host, tmp_path):
    out = collect_py(host, tmp_path / "s.tar.gz")
    edited = tmp_path / "nomanifest.tar.gz"
    with tarfile.open(out) as src, tarfile.open(edited, "w:gz") as dst:
        for m in src.getmembers():
            if not m.name.endswith("/MANIFEST"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    msg = one_line(klpsim("snapshot", "--show", str(edited)))
    assert "not a klpsim snapshot, sosreport or supportconfig" in msg


def _tar(path: Path, files: dict[str, bytes | str], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


def test_foreign_tarball(tmp_path):
    tb = _tar(tmp_path / "photos.tar.gz", {"photos/a.jpg": b"\xff\xd8", "photos/b.txt": "hi"})
    msg = one_line(klpsim("snapshot", "--show", str(tb)))
    assert msg == (
        f"klpsim snapshot: {tb}: not a klpsim snapshot, sosreport or supportconfig "
        "(no MANIFEST, sos_commands/ or basic-environment.txt)"
    )


def test_not_an_archive_and_no_file(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("hello\n")
    assert "not a tar archive" in one_line(klpsim("snapshot", "--show", str(junk)))
    msg = one_line(klpsim("snapshot", "--show", str(tmp_path / "nope.tar.gz")))
    assert msg == f"klpsim snapshot: {tmp_path / 'nope.tar.gz'}: No such file or directory"


def test_garbage_attribute_names_the_member(host, tmp_path):
    host.write("sys/kernel/livepatch/lp_a/enabled", "yes\n")
    out = collect_py(host, tmp_path / "s.tar.gz")
    msg = one_line(klpsim("snapshot", "--show", str(out)))
    assert msg == (
        f"klpsim snapshot: {out}: sys/kernel/livepatch/lp_a/enabled: not a number: 'yes'"
    )


def test_collector_bad_arguments(tmp_path):
    r = klpsim("snapshot", "--ko", str(tmp_path / "nodir"), "-o", str(tmp_path / "x.tar.gz"))
    assert one_line(r) == f"klpsim snapshot: --ko {tmp_path / 'nodir'}: not a directory"
    assert not (tmp_path / "x.tar.gz").exists()
    assert one_line(klpsim("snapshot", "--print-script", "--show", "x")).endswith(
        "--print-script takes no other option"
    )


# ----------------------------------------------------------------- --ko DIR


def test_ko_dir(host, tmp_path):
    kodir = tmp_path / "kos"
    (kodir / "sub").mkdir(parents=True)
    (kodir / "sub/lp_c.ko.gz").write_bytes(gzip.compress(FAKE_KO))
    (kodir / "unrelated.ko").write_bytes(b"x")
    py = tmp_path / "py.tar.gz"
    r = run_python(host.root, py, "--ko", str(kodir))
    assert r.returncode == 0, r.stderr
    for shell in SHELLS.values():
        sh = tmp_path / "sh.tar.gz"
        assert run_sh(shell, host.root, sh, "--ko", str(kodir), "--force").returncode == 0
        assert members(sh) == members(py)
    snap = read_snapshot(py)
    rel = f"{str(kodir).lstrip('/')}/sub/lp_c.ko.gz"
    assert [(k.module, k.path) for k in snap.ko_files] == [("lp_c", rel)]
    assert snap.ko("lp_c").decompressed() == FAKE_KO


# ------------------------------------------------------------------- sosreport


def _sos_files(with_livepatch: bool = True) -> dict[str, str]:
    top = "sosreport-web1-2026-06-01-abcdef"
    f = {
        f"{top}/version.txt": "sosreport: 4.8.0\n",
        f"{top}/sos_reports/manifest.json": '{"version": "4.8.0"}\n',
        f"{top}/sos_commands/kernel/uname_-a": "Linux web1 5.14.0-427.el9.x86_64 #1 SMP "
        "PREEMPT_DYNAMIC Fri May 3 2026 x86_64 x86_64 x86_64 GNU/Linux\n",
        f"{top}/sos_commands/kernel/sysctl_-a": "kernel.ftrace_dump_on_oops = 0\n"
        "kernel.ftrace_enabled = 1\nkernel.hostname = web1\n",
        f"{top}/sos_commands/kernel/lsmod": "Module Size Used by\n",
        f"{top}/sos_commands/kpatch/kpatch_list": "Loaded patch modules:\n"
        "kpatch_5_14_0_427_1_1 [enabled]\n\nInstalled patch modules:\n",
        f"{top}/proc/sys/kernel/tainted": "65536\n",
        f"{top}/proc/modules": "kpatch_5_14_0_427_1_1 16384 1 - Live 0xffffffffc0a00000 (OEK)\n"
        "xfs 2000000 2 - Live 0xffffffffc0800000\n",
        f"{top}/sys/module/kpatch_5_14_0_427_1_1/refcnt": "1\n",
        f"{top}/proc/kallsyms": "ffffffff81000000 T _text\nffffffff81100000 t foo\n",
        f"{top}/proc/1/status": "Name:\tsystemd\nUmask:\t0000\nState:\tS (sleeping)\n",
        f"{top}/proc/1/stack": "[<0>] ep_poll+0x2a1/0x2f0\n",
        f"{top}/proc/2/status": "Name:\tkthreadd\nState:\tS (sleeping)\nKthread:\t1\n",
        f"{top}/proc/2/stack": "[<0>] kthreadd+0x1b8/0x1f0\n",
        f"{top}/sys/kernel/debug/tracing/enabled_functions": "foo (1) R I   \n",
        f"{top}/var/log/messages": "lots of logs\n",
    }
    if with_livepatch:
        lp = f"{top}/sys/kernel/livepatch/kpatch_5_14_0_427_1_1"
        f |= {
            f"{lp}/enabled": "1\n",
            f"{lp}/transition": "0\n",
            f"{lp}/replace": "1\n",
            f"{lp}/vmlinux/patched": "1\n",
            f"{lp}/vmlinux/foo,1/.keep": "",
        }
    return f


def test_sosreport(tmp_path):
    files = _sos_files()
    files = {k: v for k, v in files.items() if not k.endswith("/.keep")}
    sos = tmp_path / "sosreport-web1-2026-06-01-abcdef.tar.xz"
    with tarfile.open(sos, "w:xz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tf.addfile(info, io.BytesIO(data.encode()))
        d = tarfile.TarInfo(
            "sosreport-web1-2026-06-01-abcdef/sys/kernel/livepatch/kpatch_5_14_0_427_1_1/vmlinux/foo,1"
        )
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
    snap = read_snapshot(sos)
    assert snap.kind == "sosreport" and snap.manifest is None
    assert snap.release == "5.14.0-427.el9.x86_64" and snap.ftrace_enabled is True
    assert snap.tainted == 65536
    (p,) = snap.livepatches
    assert (p.name, p.enabled, p.transition, p.replace) == (
        "kpatch_5_14_0_427_1_1",
        True,
        False,
        True,
    )
    assert p.objects[0].funcs[0] == ("foo", 1)
    assert snap.patch_order.source == "proc-modules"
    assert snap.module("kpatch_5_14_0_427_1_1").holders == Unknown(
        "sosreport does not collect /sys/module/*/holders"
    )
    assert [(t.pid, t.comm, t.kthread) for t in snap.tasks] == [
        (
            1,
            "systemd",
            Unknown("/proc/1/status has no Kthread: line (older kernel) and sos keeps no stat"),
        ),
        (2, "kthreadd", True),
    ]
    assert snap.tasks[0].stack[0].function == "ep_poll"
    assert isinstance(snap.tasks[0].patch_state, Unknown)
    assert "main thread only" in snap.partial_tasks
    assert isinstance(snap.kprobes, Unknown) and snap.ftrace[0].flags == {"R", "I"}
    assert len(snap.kallsyms) == 2 and snap.ko_files == ()
    assert ".ko files: sosreport does not collect them" in snap.missing
    assert any("kpatch_5_14_0_427_1_1 [enabled]" in n for n in snap.notes)
    # The same, unpacked.
    with tarfile.open(sos) as tf:
        tf.extractall(tmp_path / "x", filter="tar")
    b = read_snapshot(tmp_path / "x/sosreport-web1-2026-06-01-abcdef")
    assert b.livepatches == snap.livepatches and b.tasks == snap.tasks


def test_sosreport_without_livepatch_data(tmp_path):
    sos = _tar(tmp_path / "sosreport-web1.tar.xz", _sos_files(with_livepatch=False), "w:xz")
    msg = one_line(klpsim("snapshot", "--show", str(sos)))
    assert msg == (
        f"klpsim snapshot: {sos}: holds no /sys/kernel/livepatch although livepatch "
        "modules are loaded (kpatch_5_14_0_427_1_1)"
    )


# --------------------------------------------------------------- supportconfig


def _section(kind: str, label: str, body: str) -> str:
    head = {"Command": "#==[ Command ]======================================#",
            "Configuration File": "#==[ Configuration File ]===========================#"}[kind]  # fmt: skip
    return f"{head}\n# {label}\n{body}\n\n"


def _scc_files(status: str = "ready") -> dict[str, str]:
    top = "scc_sles15_260601_1200"
    lp = "/sys/kernel/livepatch/livepatch_6_4_0_150600_23_22_default"
    ls = [
        f"drwxr-xr-x 3 root root 0 2026-06-01 11:00 {lp}",
        f"-rw-r--r-- 1 root root 4096 2026-06-01 11:00 {lp}/enabled",
        f"--w------- 1 root root 4096 2026-06-01 11:00 {lp}/force",
        f"-r--r--r-- 1 root root 4096 2026-06-01 11:00 {lp}/replace",
        f"-r--r--r-- 1 root root 4096 2026-06-01 11:00 {lp}/stack_order",
        f"-r--r--r-- 1 root root 4096 2026-06-01 11:00 {lp}/transition",
        f"drwxr-xr-x 3 root root 0 2026-06-01 11:00 {lp}/vmlinux",
        f"-r--r--r-- 1 root root 4096 2026-06-01 11:00 {lp}/vmlinux/patched",
        f"drwxr-xr-x 2 root root 0 2026-06-01 11:00 {lp}/vmlinux/do_sys_open,1",
        "drwxr-xr-x 3 root root 0 2026-06-01 11:00 /sys/kernel/livepatch",
        "lrwxrwxrwx 1 root root 0 2026-06-01 11:00 /sys/module/xfs/holders/x -> ../../x",
    ]
    return {
        f"{top}/supportconfig.txt": "Support Utilities - Supportconfig\n",
        f"{top}/basic-environment.txt": _section(
            "Command",
            "/bin/uname -a",
            "Linux sles15 6.4.0-150600.23.22-default #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux",
        ),
        f"{top}/proc.txt": _section("Configuration File", "/proc/sys/kernel/ftrace_enabled", "1")
        + _section("Configuration File", "/proc/sys/kernel/tainted", "65536"),
        f"{top}/sysfs.txt": _section(
            "Command",
            "/bin/find /sys | sed -e 's/\\\\/\\\\\\\\/g' | xargs ls -ld --time-style=long-iso",
            "\n".join(ls),
        ),
        f"{top}/modules.txt": _section(
            "Command",
            "/sbin/lsmod | sort",
            "Module                  Size  Used by\n"
            "livepatch_6_4_0_150600_23_22_default    16384  1\n"
            "xfs  2000000  2 nfsd,x\n",
        )
        + _section(
            "Command",
            "/sbin/modinfo livepatch_6_4_0_150600_23_22_default",
            "filename: /lib/modules/x.ko\nlivepatch:      Y\nlicense: GPL",
        ),
        f"{top}/livepatch.txt": _section("Command", "/usr/bin/klp status", status),
    }


def test_supportconfig(tmp_path):
    scc = _tar(tmp_path / "scc_sles15_260601_1200.txz", _scc_files(), "w:xz")
    snap = read_snapshot(scc)
    assert snap.kind == "supportconfig"
    assert snap.release == "6.4.0-150600.23.22-default"
    assert snap.ftrace_enabled is True and snap.tainted == 65536
    (p,) = snap.livepatches
    assert p.name == "livepatch_6_4_0_150600_23_22_default"
    assert p.attributes == {"enabled", "force", "replace", "stack_order", "transition"}
    assert (p.enabled, p.transition) == (True, False)  # derived from 'klp status'
    assert p.replace == Unknown(
        f"/sys/kernel/livepatch/{p.name}/replace: supportconfig lists sysfs names, not their values"
    )
    assert p.objects[0].name == "vmlinux" and p.objects[0].funcs == (("do_sys_open", 1),)
    assert isinstance(p.objects[0].patched, Unknown)
    assert snap.patch_order.source == "unknown"
    xfs = snap.module("xfs")
    assert xfs.refcnt == 2 and xfs.used_by == ("nfsd", "x") and not xfs.livepatch
    assert snap.module(p.name).livepatch
    for part in (snap.kallsyms, snap.tasks, snap.kprobes, snap.ftrace, snap.injectable):
        assert isinstance(part, Unknown)
    assert any("derived from 'klp status' = ready" in n for n in snap.notes)
    assert "kallsyms: supportconfig does not collect /proc/kallsyms" in snap.missing


def test_supportconfig_in_transition_leaves_values_unknown(tmp_path):
    files = _scc_files(status="in_progress")
    scc = _tar(tmp_path / "scc_sles15_260601_1200.tgz", files)
    (p,) = read_snapshot(scc).livepatches
    assert isinstance(p.enabled, Unknown) and isinstance(p.transition, Unknown)


def test_the_python_collector_keeps_to_python_3_6():
    """It runs on production hosts: RHEL 8's platform-python is 3.6.

    Its syntax must parse as 3.6, and every annotation evaluated at run time
    (signatures) must be a plain name or a string.
    """
    import ast

    tree = ast.parse(python_collector_text(), feature_version=(3, 6))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module != "__future__", "from __future__ import annotations needs 3.7"
        if isinstance(node, ast.FunctionDef):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            for ann in [a.annotation for a in args] + [node.returns]:
                assert ann is None or isinstance(ann, ast.Constant | ast.Name), (
                    f"line {node.lineno}: {ast.unparse(ann)}"
                )
