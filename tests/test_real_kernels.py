"""The model's 6.1, 6.12 and replace-set profiles against logs of real kernels.

tests/data/real/<kernel>/test-*.filtered hold what the kernel's own
selftests logged on Debian's kernels under QEMU, and on Debian's 6.12
built with the replace_set rules (captured by ``klpsim vm --selftests
--save-logs``; the replace-set kernel's selftests are adapted as v2 4/4
adapts them). Every case there is run on the model's profile of that kernel
and must give the same filtered log.
"""

import re

import pytest

from harness import ROOT, SELFTESTS, after_last_canary, klpsim
from klpsim.scenario.helpers import filter_check_result
from klpsim.scenario.parser import parse_script

DATA = ROOT / "tests" / "data" / "real"
OVERRIDES = ROOT / "tests" / "real_kernel_cases"
# The v2 4/4 cases, as the model's replace-set scenarios (v2-test-GROUP-*.sh).
V2_CASES = ROOT / "tests" / "scenarios" / "replace-set"


def real_cases(kernel: str):
    """(group, test name, expected lines) for every case of a real log."""
    for path in sorted((DATA / kernel).glob("test-*.filtered")):
        group, name, lines = path.stem, None, []
        for line in path.read_text().splitlines():
            m = re.fullmatch(r"===== TEST: (.*) =====", line)
            if m:
                if name is not None:
                    yield group, name, lines
                name, lines = m.group(1), []
            elif name is not None:
                lines.append(line)
        if name is not None:
            yield group, name, lines


def script_index(kernel: str) -> dict:
    index = {}
    folders = [(SELFTESTS, "test-*.sh")]
    if kernel == "replace-set":
        folders.append((V2_CASES, "v2-test-*.sh"))
    folders.append((OVERRIDES / kernel, "test-*.sh"))  # overrides win
    for folder, pattern in folders:
        for path in sorted(folder.glob(pattern)):
            for cmd in parse_script(path.read_text(), str(path)):
                if cmd.words[0] == "start_test":
                    stem = path.stem.removeprefix("v2-")
                    group = "-".join(w for w in stem.split("-") if not w.isdigit())
                    group = re.match(r"test-(shadow-vars|[a-z]+)", group).group(0)
                    index[(group, cmd.words[1])] = path
    return index


def normalize(lines: list[str]) -> list[str]:
    # The pids of the getpid hammering tasks depend on the machine.
    return [re.sub(r"klp_pids=[0-9,]+", "klp_pids=PIDS", line) for line in lines]


EXPECTED_COUNTS = {"6.1": 22, "6.12": 25, "replace-set": 25}
CASES = [(k, *case) for k in EXPECTED_COUNTS for case in real_cases(k)]


def test_real_logs_are_complete():
    for kernel, count in EXPECTED_COUNTS.items():
        assert sum(1 for c in CASES if c[0] == kernel) == count


@pytest.mark.parametrize(
    "kernel, group, name, expected", CASES, ids=[f"{c[0]}:{c[1]}:{c[2]}" for c in CASES]
)
def test_model_matches_real_kernel(kernel, group, name, expected):
    script = script_index(kernel).get((group, name))
    assert script is not None, f"no scenario script for {group} '{name}'"
    r = klpsim("run", "--kernel", kernel, "--dmesg", str(script))
    result = filter_check_result(after_last_canary(r.out.splitlines()))
    assert normalize(result) == normalize(expected)
