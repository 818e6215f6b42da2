"""Both snapshot collectors in one Debian 6.12 guest with livepatches loaded.

The guest gets Debian's python3.11-minimal (real/vm/guestpython.py) so that
the Python collector runs where the sh collector runs (busybox ash is the
guest's /bin/sh).  They run one after the other on the same live kernel, so
the only members allowed to differ are those of tasks that changed in
between: the collectors' own processes, and threads that ran (their
``stat`` counters and, for a running thread, its stack).  Everything else,
the livepatch tree, /proc/modules, kallsyms, the debugfs lists and the .ko
files, must be byte for byte the same.
"""

from __future__ import annotations

import base64
import tarfile
import time

import pytest

from klpsim.artifacts.procfs import parse_stat
from klpsim.artifacts.snapshot import Unknown, read_snapshot
from klpsim.real.vm.guestpython import GUEST_PYTHON, guest_python_files
from klpsim.tools.snapshot import python_collector_text, script_text

PATCHES = ["test_klp_livepatch", "test_klp_callbacks_demo", "test_klp_atomic_replace"]
#: Processes that exist only while one collector runs (the agent forks bash -c).
COLLECTOR_COMMS = {"bash", "sh", "python3.11", "cat", "ls", "gzip", "date", "ln", "rm"}


@pytest.fixture(scope="module")
def guest():
    from klpsim.real.vm.api import prepare

    rk = prepare("6.12", log=lambda msg: None)
    vm = rk.boot(extra_files=guest_python_files(log=lambda msg: None))
    try:
        yield rk, vm
    finally:
        vm.close()


def run(vm, cmd: str, timeout: float = 600) -> str:
    rc, out = vm.run(cmd, timeout=timeout)
    assert rc == 0, f"{cmd}: {out}"
    return out


def load_state(vm) -> None:
    """Three patches stacked (no replace), one with objects for unloaded modules; a kprobe."""
    for mod, args in zip(PATCHES, ["", "", "replace=0"], strict=True):
        run(vm, f"insmod /klp/mods/{mod}.ko {args}")
        run(
            vm,
            f"for i in $(seq 300); do [ $(cat /sys/kernel/livepatch/{mod}/transition) = 0 ]"
            " && exit 0; sleep 0.1; done; exit 1",
        )
    run(vm, "echo 'p:klpsim_snap cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events")
    run(vm, "echo 1 > /sys/kernel/tracing/events/kprobes/klpsim_snap/enable")


def members(data: bytes) -> dict[str, bytes]:
    import io

    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o644)
            out[m.name.removeprefix("klpsim-snapshot").lstrip("/")] = (
                tf.extractfile(m).read() if m.isfile() else b"<dir>"
            )
    return out


def worker(comm: str) -> str:
    """A kworker's comm without the workqueue it last ran (wq_worker_comm() appends it)."""
    if comm.startswith("kworker/"):
        return comm.split("-", 1)[0].split("+", 1)[0]
    return comm


def task_of(name: str) -> str | None:
    """``proc/P/task/T`` of a task member, else None."""
    parts = name.split("/")
    if len(parts) == 5 and parts[0] == "proc" and parts[2] == "task":
        return "/".join(parts[:4])
    return None


@pytest.mark.real_kernel("6.12")
def test_python_and_sh_collectors_agree_on_a_real_kernel(guest, tmp_path):
    rk, vm = guest
    load_state(vm)
    vm.put("/tmp/collector.py", python_collector_text().encode())
    vm.put("/tmp/klpsim-snapshot.sh", script_text().encode())
    t0 = time.monotonic()
    run(vm, f"cd /tmp && {GUEST_PYTHON} collector.py --ko /klp/mods -o /tmp/py.tar.gz")
    t_py = time.monotonic() - t0
    t0 = time.monotonic()
    run(vm, "cd /tmp && sh klpsim-snapshot.sh --ko /klp/mods -o /tmp/sh.tar.gz")
    t_sh = time.monotonic() - t0
    print(f"\nguest collectors: python {t_py:.1f} s, sh {t_sh:.1f} s (TCG)")
    archives = {}
    for name in ("py", "sh"):
        data = base64.b64decode(run(vm, f"base64 /tmp/{name}.tar.gz"))
        (tmp_path / f"{name}.tar.gz").write_bytes(data)
        archives[name] = members(data)
    py, sh = archives["py"], archives["sh"]

    # Everything but the tasks and the MANIFEST: the same bytes.
    fixed_py = {k: v for k, v in py.items() if not task_of(k) and k != "MANIFEST"}
    fixed_sh = {k: v for k, v in sh.items() if not task_of(k) and k != "MANIFEST"}
    assert fixed_py.keys() == fixed_sh.keys()
    for k in fixed_py:
        assert fixed_py[k] == fixed_sh[k], k
    assert "sys/kernel/livepatch/test_klp_livepatch/vmlinux/cmdline_proc_show,1" in fixed_py
    assert "klp/mods/test_klp_livepatch.ko" in fixed_py

    # Tasks: those in one archive only are the collectors' own processes.
    tasks = {n: {task_of(k) for k in a if task_of(k)} for n, a in archives.items()}
    for only, mine in ((tasks["py"] - tasks["sh"], py), (tasks["sh"] - tasks["py"], sh)):
        comms = {mine[f"{t}/comm"].decode().strip() for t in only}
        assert comms <= COLLECTOR_COMMS, comms
    common = tasks["py"] & tasks["sh"]
    assert len(common) > 40
    slept, moved = 0, []
    for t in sorted(common):
        assert py[f"{t}/patch_state"] == sh[f"{t}/patch_state"], t
        a, b = parse_stat(py[f"{t}/stat"].decode()), parse_stat(sh[f"{t}/stat"].decode())
        assert (a.pid, a.kthread) == (b.pid, b.kthread), t
        assert (
            py[f"{t}/comm"].decode().strip() == a.comm
            and sh[f"{t}/comm"].decode().strip() == b.comm
        )
        assert worker(a.comm) == worker(b.comm), t
        # A thread asleep at both collections has the same stack, unless it ran
        # in between (rcu_preempt's grace-period loop does, every few ms).
        if a.state in "SID" and b.state in "SID" and a.comm not in COLLECTOR_COMMS:
            slept += 1
            if py[f"{t}/stack"] != sh[f"{t}/stack"]:
                moved.append(a.comm)
    print(f"common tasks: {len(common)}; asleep in both: {slept}; stack moved: {moved}")
    assert slept > 40 and len(moved) <= 3, moved

    manifests = {n: a["MANIFEST"].decode().splitlines() for n, a in archives.items()}
    for n in manifests:
        manifests[n] = [
            ln
            for ln in manifests[n]
            if not ln.startswith(("collector: ", "date: "))
            and not (ln.startswith("item: proc/") and task_of(ln.split()[1]) not in common)
        ]
    assert manifests["py"] == manifests["sh"]

    # What the reader makes of the real kernel's files.
    snap = read_snapshot(tmp_path / "sh.tar.gz")
    assert snap.manifest.collector == "sh" and snap.manifest.root
    assert snap.release == rk.kver and snap.ftrace_enabled is True
    assert [p.name for p in snap.livepatches] == PATCHES
    assert snap.patch_order.source == "proc-modules"  # 6.12 has no stack_order
    for p in snap.livepatches:
        assert p.attributes == {"enabled", "transition", "force", "replace"}
        assert (p.enabled, p.transition, p.replace) == (True, False, False)
        item = snap.manifest.item(f"sys/kernel/livepatch/{p.name}/force")
        assert (item.status, item.reason) == ("unreadable", "write-only")  # EACCES even as root
    demo = snap.livepatch("test_klp_callbacks_demo")
    assert [(o.name, o.patched, [f.name for f in o.funcs]) for o in demo.objects] == [
        ("test_klp_callbacks_busy", False, ["busymod_work_func"]),
        ("test_klp_callbacks_mod", False, []),
        ("vmlinux", True, []),
    ]
    assert all(t.patch_state == -1 for t in snap.tasks)
    kthreadd = next(t for t in snap.tasks if t.pid == 2)
    assert kthreadd.comm == "kthreadd" and kthreadd.kthread is True
    assert all(not isinstance(t.stack, Unknown) for t in snap.tasks)
    assert snap.kallsyms.addresses_known and snap.manifest.kallsyms_addresses == "real"
    assert "0000000000000000 A fixed_percpu_data" in py["proc/kallsyms"].decode()[:200]
    assert snap.kallsyms.count("cmdline_proc_show") == 1
    assert snap.kallsyms.count("livepatch_cmdline_proc_show", "test_klp_livepatch") == 1
    (kp,) = snap.kprobes
    # +0x4: with IBT the probe moves past ENDBR64 to the fentry site (arch_adjust_kprobe_addr()).
    assert (kp.symbol, kp.offset, kp.kind, kp.flags) == ("cmdline_proc_show", 4, "k", {"FTRACE"})
    ft = {r.function: r for r in snap.ftrace}
    assert "I" in ft["cmdline_proc_show"].flags and "I" in ft["meminfo_proc_show"].flags
    assert snap.injectable == Unknown(
        "/sys/kernel/debug/fail_function/injectable: not on the host"
    )  # Debian: no CONFIG_FUNCTION_ERROR_INJECTION
    assert sorted(k.module for k in snap.ko_files) == sorted(PATCHES)
    assert snap.ko("test_klp_livepatch").data[:4] == b"\x7fELF"
