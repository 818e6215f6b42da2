"""Fixtures for the real-kernel tier: one booted guest per Debian kernel.

These tests need root, apt and QEMU (``.ci/vm-tier`` installs them).  They
never skip: on a machine without QEMU or the kernel packages they fail with
the tier's one-line error.
"""

from __future__ import annotations

import pytest

KERNELS = ["6.1", "6.12"]


@pytest.fixture(scope="session", params=KERNELS)
def guest(request):
    """(RealKernel, VM) for one kernel, booted once for the whole session."""
    from klpsim.real.vm.api import prepare

    rk = prepare(request.param, log=lambda msg: None)
    vm = rk.boot()
    try:
        yield rk, vm
    finally:
        vm.close()
