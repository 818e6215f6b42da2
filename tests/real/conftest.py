"""Fixtures for the real-kernel tier: one booted guest per real kernel, and
the real .ko fixtures built for each Debian kernel.

These tests need root, apt and QEMU (``.ci/vm-tier`` installs them).  They
never skip: on a machine without QEMU or the kernel packages they fail with
the tier's one-line error.  Each kernel boots once per session; the
fixtures below share that guest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from klpsim.real.vm import KERNELS, REPLACE_SET

DEBIAN = [k for k in KERNELS if k != REPLACE_SET]

_GUESTS: dict = {}


def pytest_addoption(parser):
    parser.addoption(
        "--kernel",
        action="append",
        default=[],
        metavar="K",
        help="run only the tests on kernel K (repeatable; 'none': the tests that boot "
        "no kernel); .ci/vm-tier runs the kernels side by side this way",
    )


def _kernel_of(item) -> str:
    """The real kernel a collected test runs on ('none' if it runs on none)."""
    mark = item.get_closest_marker("real_kernel")
    if mark is not None:
        return mark.args[0]
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for value in callspec.params.values():
            if isinstance(value, str) and value in KERNELS:
                return value
    if "rs_guest" in item.fixturenames:
        return REPLACE_SET
    return "none"


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--kernel")
    if not wanted:
        return
    unknown = sorted(set(wanted) - {*KERNELS, "none"})
    if unknown:
        raise pytest.UsageError(f"--kernel {unknown[0]}: not one of {', '.join(KERNELS)}, none")
    keep = [item for item in items if _kernel_of(item) in wanted]
    dropped = [item for item in items if _kernel_of(item) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _guest(kernel: str):
    if kernel not in _GUESTS:
        from klpsim.real.vm.api import prepare

        rk = prepare(kernel, log=lambda msg: None)
        _GUESTS[kernel] = (rk, rk.boot())
    return _GUESTS[kernel]


@pytest.fixture(scope="session", autouse=True)
def _close_guests():
    yield
    for _, vm in _GUESTS.values():
        vm.close()
    _GUESTS.clear()


@pytest.fixture(scope="session", params=KERNELS)
def guest(request):
    """(RealKernel, VM) for every real kernel, booted once for the session."""
    return _guest(request.param)


@pytest.fixture(scope="session", params=DEBIAN)
def debian_guest(request):
    """(RealKernel, VM) for Debian's own kernels (``replace`` in klp_patch)."""
    return _guest(request.param)


@pytest.fixture(scope="session")
def rs_guest():
    """(RealKernel, VM) for the replace-set kernel."""
    return _guest(REPLACE_SET)


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


@pytest.fixture(scope="session", params=DEBIAN)
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
