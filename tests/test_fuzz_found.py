"""What the real kernels showed the fuzzer (tests/scenarios/fuzz-found), on
the model; tests/real/test_fuzz_found_real.py runs the same scripts on the
real kernels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from klpsim.livepatch.profiles import get_profile
from klpsim.tools.realdiff import comparable, model_output

FOUND = Path(__file__).resolve().parent / "scenarios" / "fuzz-found"
PROFILES = ("6.1", "6.12", "replace-set-6.12", "7.1", "replace-set")


def _run(name: str, profile: str) -> tuple[int, list[str], str]:
    script = FOUND / f"{name}.sh"
    # a Profile: model_output() maps the name "replace-set" to the kernel's
    return model_output(script.read_text(), script, get_profile(profile), [FOUND / "test_modules"])


@pytest.mark.parametrize("profile", PROFILES)
def test_enabled_functions_in_address_order(profile):
    status, _, out = _run("enabled-functions-order", profile)
    assert status == 0, out
    listed = re.findall(r"(\w+) \(1\) ", out)
    # m_show (both) before fs/proc's show functions, those in file name order
    assert listed == [
        "m_show", "cmdline_proc_show", "loadavg_proc_show", "meminfo_proc_show",
        "version_proc_show",
    ]  # fmt: skip


@pytest.mark.parametrize("profile", PROFILES)
def test_state_without_data_oopses_in_pre_unpatch(profile):
    status, log, out = _run("state-without-data", profile)
    rip = f"RIP: 0010:{get_profile(profile).state_restore_oops_at} [test_klp_state3]"
    # out of tree, livepatch, and unsigned where the kernel checks signatures
    # (the replace-set build does not: CONFIG_MODULE_SIG is off)
    flags = "OK" if profile == "replace-set-6.12" else "OEK"
    # the echo ran in the script's own shell: the script is killed there
    assert status == 137
    assert out.endswith("Killed\n")
    filtered = comparable(log, False)
    at = filtered.index("test_klp_state3: restore_console_loglevel: restoring console_loglevel")
    assert filtered[at + 1 :] == [
        rip,
        f"Modules linked in: test_klp_state3({flags}) lp_state_nodata({flags})",
        rip,
    ]
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in log
    # the transition never starts (klp_mutex stays held)
    assert not any("starting unpatching transition" in line for line in log)


def test_last_unloaded_is_not_compared():
    """What the guest unloaded before a script is the harness's doing."""
    line = "[    1.0] Modules linked in: test_klp_a(OEK) [last unloaded: klpsim_taint(OEK)]"
    assert comparable([line], True) == ["Modules linked in: test_klp_a(OEK)"]
    assert comparable(["[    1.0] test_klp_a: x [last unloaded: y]"], True) == [
        "test_klp_a: x [last unloaded: y]"
    ]
