"""Fixtures for the real-kernel tier: one booted guest per Debian kernel, and
the real .ko fixtures built for each.

These tests need root, apt and QEMU (``.ci/vm-tier`` installs them).  They
never skip: on a machine without QEMU or the kernel packages they fail with
the tier's one-line error.
"""

from __future__ import annotations

from pathlib import Path

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


DEFS = Path(__file__).resolve().parent / "defs"
INSPECT_DEFS = Path(__file__).resolve().parent / "inspect_defs"

#: TOML definitions the fixture builder generates modules from.
FIXTURE_TOMLS = [
    DEFS / "klpsim_lp_a.toml",
    DEFS / "klpsim_lp_b.toml",
    DEFS / "klpsim_mod_a.toml",
    INSPECT_DEFS / "klpsim_ins_multi.toml",
    INSPECT_DEFS / "klpsim_ins_states_only.toml",
]


@pytest.fixture(scope="session", params=KERNELS)
def ko_fixtures(request):
    """(series, [Fixture]) for one kernel: the .ko fixtures, built once (cached).

    Needs the Debian packages (apt), make and gcc, not QEMU; a missing piece
    fails the test with the builder's one-line error.
    """
    from klpsim.real.fixtures import build_fixtures
    from klpsim.real.vm.errors import VMError

    try:
        return request.param, build_fixtures(request.param, FIXTURE_TOMLS, log=lambda m: None)
    except VMError as e:
        pytest.fail(f"building the .ko fixtures for {request.param}: {e}")
