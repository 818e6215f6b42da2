"""Every test fails when the model WARNs where it did not expect it.

The kernel's WARN_ON_ONCE() checks (transition.c: a task still pending
when a transition completes, a task not idle when one starts, ...) are how
a broken consistency model shows itself on a real machine. A transcript
filters them out (check_result keeps only livepatch: lines), so this guard
watches Kernel.warn() under every test instead. A test that provokes a WARN
on purpose says so with ``@pytest.mark.kernel_warns``; a scenario script
does so in its expected transcript (a ``WARNING: CPU:`` line in
``expected/STEM*.out`` next to it).
"""

from pathlib import Path

import pytest

from klpsim.kernel.machine import Kernel


@pytest.fixture(autouse=True)
def no_unexpected_warn(request, monkeypatch):
    seen: list[str] = []
    warn = Kernel.warn

    def recording_warn(self, message, where, once_key=None):
        seen.append(where)
        warn(self, message, where, once_key)

    monkeypatch.setattr(Kernel, "warn", recording_warn)
    yield seen
    if request.node.get_closest_marker("kernel_warns") is None and not _expected_warn(request):
        assert not seen, f"the model WARNed: {seen}"


def _expected_warn(request) -> bool:
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    script = params.get("script")
    if not isinstance(script, Path):
        return False
    return any(
        "] WARNING: CPU: " in out.read_text()
        for out in script.parent.glob(f"expected/{script.stem}*.out")
    )
