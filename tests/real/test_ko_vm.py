"""Real ``.ko`` files in a scenario: the same script loads the same built
modules on the model (read by artifacts/ko.py) and in the VM (loaded as they
are); the filtered kernel logs must be equal. On Debian's kernels: the .ko
fixtures are built from Debian's packages (conftest.ko_fixtures)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FIXTURE_TOMLS

from klpsim.tools.realdiff import comparable, compare, model_log

SCRIPT = """start_test 'real .ko files'
load_mod klpsim_mod_a
load_lp livepatch_sample
load_lp klpsim_lp_a
load_failing_mod klpsim_lp_b
disable_lp klpsim_lp_a
unload_lp klpsim_lp_a
load_lp test_klp_atomic_replace replace=1
unload_lp livepatch_sample
disable_lp test_klp_atomic_replace
unload_lp test_klp_atomic_replace
unload_mod klpsim_mod_a
"""

#: What the script must log (model and VM alike), beyond enable/disable lines.
MUST = [
    "livepatch: enabling patch 'livepatch_sample'",
    "livepatch: enabling patch 'klpsim_lp_a'",
    # klpsim_lp_b (replace) holds state 7 at version 1, klpsim_lp_a version 2
    "livepatch: Livepatch patch (klpsim_lp_b) is not compatible with the already installed livepatches.",
    "livepatch: 'test_klp_atomic_replace': patching complete",
    "livepatch: 'test_klp_atomic_replace': unpatching complete",
]


@pytest.fixture
def ko_dir(debian_guest, tmp_path):
    from klpsim.real.fixtures import build_fixtures

    rk, _ = debian_guest
    fixtures = {f.name: f for f in build_fixtures(rk.series, FIXTURE_TOMLS, log=lambda m: None)}
    for name in (
        "livepatch-sample",
        "klpsim_lp_a",
        "klpsim_lp_b",
        "klpsim_mod_a",
        "test_klp_atomic_replace",
    ):
        shutil.copy(fixtures[name].kos["strip-debug"], tmp_path / f"{name}.ko")
    return tmp_path


def test_real_ko_files_log_the_same_on_the_model_and_the_kernel(debian_guest, ko_dir: Path):
    rk, vm = debian_guest
    path = ko_dir / "ko.sh"
    path.write_text(SCRIPT)
    status, model = model_log(SCRIPT, path, rk.series, [ko_dir])
    res = rk.run_script(vm, path, [ko_dir])
    assert (status, res.exit_status) == (0, 0), res.stdout
    m, r = comparable(model, False), comparable(res.log_lines, True)
    assert compare("ko.sh", m, r) == ""
    for line in MUST:
        assert line in r, line
