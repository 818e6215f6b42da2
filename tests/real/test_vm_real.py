"""The real-kernel tier against Debian's 6.1 and 6.12 kernels, and the
replace-set kernel, in QEMU.

Every assertion here is about what the real kernel did: the kernel's own
selftests pass (unmodified on Debian's kernels, adapted as v2 4/4 adapts
them on the replace-set kernel), their filtered logs are the ones stored in
tests/data/real, and scenario scripts with TOML-generated modules log exactly
the lines below.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from klpsim.real.vm.errors import VMError
from klpsim.real.vm.selftests import check_result_view, list_selftests, run_selftest

DATA = Path(__file__).resolve().parent.parent / "data" / "real"
DEFS = Path(__file__).resolve().parent / "defs"
CASES = {"6.1": 22, "6.12": 25, "replace-set": 25}


def _load_lines(rk, mod: str, args: str = "") -> str:
    """What the kernel's own functions.sh logs for load_mod/load_lp."""
    if rk.series == "6.1":
        return f"% modprobe {mod}{' ' + args if args else ''}"
    return f"% insmod test_modules/{mod}.ko{' ' + args if args else ''}"


def _einval(rk, mod: str) -> str:
    if rk.series == "6.1":
        return f"modprobe: ERROR: could not insert '{mod}': Invalid argument"
    return f"insmod: ERROR: could not insert module test_modules/{mod}.ko: Invalid parameters"


def _enable(p: str) -> list[str]:
    return [
        f"livepatch: enabling patch '{p}'",
        f"livepatch: '{p}': initializing patching transition",
        f"livepatch: '{p}': starting patching transition",
        f"livepatch: '{p}': completing patching transition",
        f"livepatch: '{p}': patching complete",
    ]


def _disable(p: str) -> list[str]:
    return [
        f"% echo 0 > /sys/kernel/livepatch/{p}/enabled",
        f"livepatch: '{p}': initializing unpatching transition",
        f"livepatch: '{p}': starting unpatching transition",
        f"livepatch: '{p}': completing unpatching transition",
        f"livepatch: '{p}': unpatching complete",
        f"% rmmod {p}",
    ]


def _no_pids(text: str) -> str:
    """test-syscall.sh logs the pids it passes in klp_pids=: they vary."""
    return re.sub(r"klp_pids=[0-9,]+", "klp_pids=PIDS", text)


def _after_test_line(lines: list[str]) -> list[str]:
    i = next(i for i, ln in enumerate(lines) if ln.startswith("===== TEST: "))
    return lines[i + 1 :]


def test_kernel_selftests_pass(guest):
    """Unmodified on Debian's kernels; adapted as v2 4/4 does on replace-set."""
    rk, vm = guest
    names = list_selftests(rk.tree.selftests_dir)
    total = 0
    for name in names:
        r = run_selftest(vm, name)
        assert r.ok, f"{rk.series} {name}:\n{r.result.stdout}"
        total += len(r.passed)
        stored = (DATA / rk.series / name.replace(".sh", ".filtered")).read_text()
        got = "\n".join(check_result_view(r.result.log_lines)) + "\n"
        assert _no_pids(got) == _no_pids(stored), name
    assert total == CASES[rk.series]


def test_toml_modules_in_a_scenario(debian_guest):
    rk, vm = debian_guest
    script = """start_test "klpsim toml modules"
load_mod klpsim_mod_a
load_lp klpsim_lp_a
cat /proc/cmdline > /dev/kmsg
cat /proc/version > /dev/kmsg
cat /proc/klpsim_mod_a/klpsim_mod_a_show > /dev/kmsg
cat /proc/klpsim_mod_a/klpsim_mod_a_work > /dev/kmsg
load_failing_mod klpsim_lp_b
disable_lp klpsim_lp_a
unload_lp klpsim_lp_a
cat /proc/klpsim_mod_a/klpsim_mod_a_show > /dev/kmsg
load_lp klpsim_lp_b replace=0
grep -c . /proc/meminfo
cat /proc/meminfo > /dev/kmsg
cat /sys/kernel/livepatch/klpsim_lp_b/enabled > /dev/kmsg
disable_lp klpsim_lp_b
unload_lp klpsim_lp_b
unload_mod klpsim_mod_a
"""
    res = rk.run_script(vm, script, modules_dirs=[DEFS])
    assert res.exit_status == 0, res.stdout
    assert res.log_lines[0] == "livepatch: kernel.ftrace_enabled = 1"
    expected = [
        _load_lines(rk, "klpsim_mod_a"),
        "klpsim_mod_a: klpsim_mod_a_init",
        _load_lines(rk, "klpsim_lp_a"),
        *_enable("klpsim_lp_a"),
        "klpsim_lp_a: cmdline",
        "klpsim_lp_a: version",
        "klpsim_lp_a: mod_a",
        "klpsim_mod_a: klpsim_mod_a_work: original output",
        _load_lines(rk, "klpsim_lp_b"),
        "livepatch: Livepatch patch (klpsim_lp_b) is not compatible with the already "
        "installed livepatches.",
        _einval(rk, "klpsim_lp_b"),
        *_disable("klpsim_lp_a"),
        "klpsim_mod_a: klpsim_mod_a_show: original output",
        _load_lines(rk, "klpsim_lp_b", "replace=0"),
        *_enable("klpsim_lp_b"),
        "klpsim_lp_b: this has been live patched",
        "1",
        *_disable("klpsim_lp_b"),
        "% rmmod klpsim_mod_a",
        "klpsim_mod_a: klpsim_mod_a_exit",
    ]
    assert _after_test_line(res.log_lines) == expected
    assert res.stdout == "TEST: klpsim toml modules ... 1\n"


def test_next_script_starts_clean(guest):
    """A script that leaves a stalled transition behind does not leak into the next."""
    rk, vm = guest
    boots = vm.boots
    left = rk.run_script(
        vm,
        """start_test "leave a stalled transition"
load_mod test_klp_callbacks_busy block_transition=Y
load_lp_nowait test_klp_callbacks_demo
load_mod klpsim_mod_a
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition > /dev/kmsg
""",
        modules_dirs=[DEFS],
    )
    assert left.exit_status == 0, left.stdout
    assert left.log_lines[-1] == "1"
    clean = rk.run_script(vm, "ls /sys/kernel/livepatch\ncat /proc/modules\n")
    assert (clean.exit_status, clean.stdout) == (0, "")
    assert clean.log_lines == ["livepatch: kernel.ftrace_enabled = 1"]
    assert vm.boots == boots and not left.rebooted


def test_failed_check_result_exits_1(guest):
    rk, vm = guest
    res = rk.run_script(
        vm,
        'start_test "mismatch"\nload_lp test_klp_livepatch\ncheck_result "nothing"\n',
    )
    assert res.exit_status == 1
    assert "ERROR: livepatch kselftest(s) failed" in res.stdout
    assert res.log_lines[-1] == "ERROR: livepatch kselftest(s) failed"


def test_project_verbs_trace_a_livepatched_function(guest):
    """trace_function and friends come from klpsim's library on these kernels."""
    rk, vm = guest
    res = rk.run_script(
        vm,
        """start_test "trace"
load_lp test_klp_livepatch
trace_function cmdline_proc_show
cat /proc/cmdline
check_traced_functions cmdline_proc_show
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
""",
    )
    assert res.exit_status == 0, res.stdout
    assert res.stdout == "TEST: trace ... test_klp_livepatch: this has been live patched\n"


def test_function_missing_from_the_kernel_is_refused(guest):
    """The generator builds it; the kernel refuses it at load time, as the model does."""
    rk, vm = guest
    res = rk.run_script(vm, DEFS.parent / "missing.sh", modules_dirs=[DEFS])
    assert res.exit_status == 0, res.stdout
    refused = (
        "modprobe: ERROR: could not insert 'klpsim_lp_missing': Invalid argument"
        if rk.series == "6.1"
        else "insmod: ERROR: could not insert module test_modules/klpsim_lp_missing.ko: "
        "Invalid parameters"
    )
    assert res.log_lines[-4:] == [
        _load_lines(rk, "klpsim_lp_missing"),
        "livepatch: symbol 'klpsim_no_such_function' not found in symbol table",
        refused,
        "klpsim_lp_missing: done",
    ]


def test_unknown_module_is_refused(guest):
    rk, vm = guest
    with pytest.raises(VMError, match="unknown module 'klpsim_nowhere'"):
        rk.run_script(vm, "load_mod klpsim_nowhere\n", modules_dirs=[DEFS])
