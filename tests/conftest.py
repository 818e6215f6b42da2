"""Every test fails when the model WARNs where it did not expect it.

The kernel's WARN_ON_ONCE() checks (transition.c: a task still pending
when a transition completes, a task not idle when one starts, ...) are how
a broken consistency model shows itself on a real machine. A transcript
filters them out (check_result keeps only livepatch: lines), so this guard
watches Kernel.warn() under every test instead. A test that provokes a WARN
on purpose says so with ``@pytest.mark.kernel_warns``.
"""

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
    if request.node.get_closest_marker("kernel_warns") is None:
        assert not seen, f"the model WARNed: {seen}"
