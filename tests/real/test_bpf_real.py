"""The BPF scenarios of tests/scenarios/bpf-real on real kernels, against the model.

In the guest, klpsim's own loader (real/vm/bpftool.py, data/klpsim-bpf.c)
gives scripts ``bpf_attach``, ``bpf_detach``, ``bpf_attachments`` and
``call``. Each script must exit 0, log what the model logs (filtered as
check_result filters), and print what the model prints once normalized
(realdiff.normalize_output: the caller's task, and the model-only STATE and
NOTE columns of ``bpf_attachments``):

* Debian's 6.1 and 6.12 (BTF and BPF trampolines, no error injection),
  each against its own profile;
* the replace-set kernel (Debian's 6.12 source with the replace_set rules,
  built with CONFIG_FUNCTION_ERROR_INJECTION and CONFIG_BPF_KPROBE_OVERRIDE:
  the error-injection cells) against its profile ``replace-set-6.12`` (the
  6.12 profile with the replace-set policy and that build's config).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from klpsim.real.vm import REPLACE_SET, model_profile
from klpsim.tools.realdiff import diff_one

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "bpf-real"
#: Scripts that need CONFIG_FAIL_FUNCTION: the replace-set kernel only (on
#: Debian's kernels fail_function's directory does not exist).
FAIL_FUNCTION_SCRIPTS = [SCENARIOS / "fail-function.sh"]
SCRIPTS = sorted(set(SCENARIOS.glob("*.sh")) - set(FAIL_FUNCTION_SCRIPTS))
MODULES = [SCENARIOS / "test_modules"]

#: What each script must show on each kernel, beyond agreeing with the model:
#: the cells it is there for were reached (not all refused alike).
CELLS = {
    ("observers", "6.1"): ["  kprobe body on cmdline_proc_show", "  kretprobe ret on"],
    ("observers", "6.12"): ["  kprobe_multi multi on cmdline_proc_show", "  fexit fexit on"],
    ("observers", REPLACE_SET): ["  kprobe body on cmdline_proc_show"],
    ("override-order", REPLACE_SET): [
        "  ran just_return_func: overridden, no body ran",
        "  ran lp_mod_ei:lp_mod_ei_alloc (new_func of livepatch lp_mod_ei)",
    ],
    ("override-order", "6.12"): ["bpf_override_return#58"],
    ("fmod-ret", REPLACE_SET): [
        "  ran nothing: the trampoline skipped the call",
        "  fexit exit on __x64_sys_syncfs: saw return -13",
    ],
    ("fmod-ret", "6.1"): ["__x64_sys_syncfs() is not modifiable"],
    ("attach-rules", REPLACE_SET): ["ovr: kprobe mod_ei:mod_ei_alloc attached"],
    ("health", "6.12"): ["  kprobe newfunc on lp_version_show"],
    ("trampoline-override", REPLACE_SET): [
        "  fexit exit on __x64_sys_syncfs: saw return -9",  # the override lost
        "  returned <undefined>",  # just_return_func called, not returned to
    ],
    ("unrelated-kprobe", REPLACE_SET): ["  ran just_return_func: overridden, no body ran"],
    ("multi-override", REPLACE_SET): [
        "  kprobe_multi movr on __x64_sys_syncfs: bpf_override_return(-1)\n"
        "  ran just_return_func: overridden, no body ran",
        "  kprobe_multi movr on __x64_sys_syncfs: bpf_override_return(-1)\n"
        "  ran lp_syncfs:lp_syncfs_syncfs (new_func of livepatch lp_syncfs)",
    ],
    ("multi-override", "6.12"): ["bpf_override_return#58"],
    ("fail-function", REPLACE_SET): [
        "  fail_function on __x64_sys_syncfs: injected -14\n"
        "  ran just_return_func: overridden, no body ran",
        "echo: write error: Device or resource busy",  # 6.12 reports the arming error
    ],
}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_bpf_scenario_agrees_with_the_real_kernel(guest, script):
    rk, vm = guest
    res = diff_one(rk, vm, script, model_profile(rk.series), MODULES, output=True)
    assert res.real_status == 0, res.real_output
    assert res.diff == "", res.diff
    for cell in CELLS.get((script.stem, rk.series), []):
        assert cell in res.real_output, f"{cell!r} not in the guest's output:\n{res.real_output}"


@pytest.mark.parametrize(
    "script", FAIL_FUNCTION_SCRIPTS, ids=[s.stem for s in FAIL_FUNCTION_SCRIPTS]
)
def test_fail_function_scenario_agrees_with_the_replace_set_kernel(rs_guest, script):
    rk, vm = rs_guest
    res = diff_one(rk, vm, script, model_profile(rk.series), MODULES, output=True)
    assert res.real_status == 0, res.real_output
    assert res.diff == "", res.diff
    for cell in CELLS[(script.stem, REPLACE_SET)]:
        assert cell in res.real_output, f"{cell!r} not in the guest's output:\n{res.real_output}"
    # fail_function's kprobe (IPMODIFY) refused the livepatch
    assert "livepatch: failed to register ftrace handler for function '__x64_sys_syncfs' (-16)" in (
        res.real_log
    )


def test_every_scenario_runs_on_the_model_too():
    """Each script is a plain scenario: the model runs it on every profile."""
    from klpsim.tools.realdiff import model_output

    assert {s.stem for s in SCRIPTS} == {
        "attach-rules", "fmod-ret", "health", "multi-override", "observers", "override-order",
        "trampoline-override", "unrelated-kprobe",
    }  # fmt: skip
    for script in SCRIPTS:
        for profile in ("6.1", "6.12", model_profile(REPLACE_SET)):
            status, _, out = model_output(script.read_text(), script, profile, MODULES)
            assert status == 0, out
    for script in FAIL_FUNCTION_SCRIPTS:
        status, _, out = model_output(
            script.read_text(), script, model_profile(REPLACE_SET), MODULES
        )
        assert status == 0, out
