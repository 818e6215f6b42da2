"""The tracefs scenarios (tests/scenarios/tracefs) on Debian's 6.1 and 6.12
kernels in QEMU, against the model's profile of each kernel.

Each script runs in a freshly booted guest (tracefs keeps state that no reset
undoes: the sticky M flag, a WARN_ONCE, the kprobe_ftrace_ops a failed
disarm leaves registered) and must agree with the model three ways: the log
lines check_result compares, the script's own output once normalized
(realdiff.normalize_output), and the kernel's kprobe/tracing lines that
neither shows (the WARN of a failed disarm, "Kprobes globally ...",
"event trace: Could not enable event ...").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from klpsim.tools.realdiff import diff_one

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios" / "tracefs"
SCRIPTS = sorted(SCENARIOS.glob("*.sh"))
KERNELS = ["6.1", "6.12"]
# Kernel lines that are neither in the filtered log nor in the output.
INTEREST = re.compile(r"^(kprobes: |Failed to disarm |event trace: |WARNING: CPU: |trace_kprobe: )")


@pytest.fixture(scope="module", params=KERNELS)
def real_kernel(request):
    from klpsim.real.vm.api import prepare

    return prepare(request.param, log=lambda msg: None)


def _interest(lines: list[str]) -> list[str]:
    return [re.sub(r"PID: \d+", "PID: N", ln) for ln in lines if INTEREST.match(ln)]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_tracefs_scenario_agrees_with_the_real_kernel(real_kernel, script):
    rk = real_kernel
    with rk.boot() as vm:
        res = diff_one(rk, vm, script, rk.series, [], output=True)
    assert res.diff == "", res.diff
    assert _interest(res.model_log) == _interest(res.real_log)
