"""The kernel's own livepatch selftests, run unmodified in the guest.

The scripts come from ``tools/testing/selftests/livepatch`` of Debian's
linux-source; 6.1's use ``modprobe`` (modules in /lib/modules/<kver>/extra),
6.9+ use ``insmod test_modules/MOD.ko`` and skip unless ``$KDIR`` is a
directory.  Both layouts are in the initramfs (see initramfs.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .vm import VMResult

__all__ = [
    "SelftestResult",
    "check_result_view",
    "count_results",
    "functions_sh_filter",
    "list_selftests",
    "run_selftest",
    "save_logs",
]

_TEST_LINE = re.compile(r"^TEST: (.*) \.\.\. (ok|not ok)", re.M)
_TIMESTAMP = re.compile(r"^\[[ 0-9.]*\] ")
_CALLER = re.compile(r"^\[[ ]*[CT][0-9]*\] ")


@dataclass
class SelftestResult:
    name: str
    result: VMResult
    passed: list[str]
    failed: list[str]

    @property
    def ok(self) -> bool:
        return self.result.exit_status == 0 and not self.failed and bool(self.passed)


def list_selftests(selftests_dir: Path) -> list[str]:
    return sorted(p.name for p in selftests_dir.glob("test-*.sh"))


def count_results(stdout: str) -> tuple[list[str], list[str]]:
    """Names of the test cases that printed ``ok`` and ``not ok``."""
    passed: list[str] = []
    failed: list[str] = []
    for m in _TEST_LINE.finditer(stdout):
        (passed if m.group(2) == "ok" else failed).append(m.group(1))
    return passed, failed


def check_result_view(log_lines: list[str]) -> list[str]:
    """The kernel log as functions.sh's ``check_result`` sees it.

    Keeps lines that contain ``livepatch:`` or ``test_klp``, drops the taint
    notices and strips timestamps and caller ids.  The ``===== TEST: NAME
    =====`` lines that ``start_test`` logs are kept as separators (they never
    pass the kernel's filter, so they cannot be confused with a compared line).
    """
    out = []
    for line in log_lines:
        line = _CALLER.sub("", _TIMESTAMP.sub("", line))
        if (
            line.startswith("===== TEST: ")
            or ("livepatch:" in line or "test_klp" in line)
            and not re.search(r"(tainting|taints) kernel", line)
        ):
            out.append(line)
    return out


def functions_sh_filter(log_lines: list[str]) -> list[str]:
    """Exactly the filter of functions.sh's ``check_result`` (no separators)."""
    return [ln for ln in check_result_view(log_lines) if not ln.startswith("===== TEST: ")]


def run_selftest(vm, name: str, timeout: float = 900.0) -> SelftestResult:
    """Run ``tools/testing/selftests/livepatch/<name>`` as the kernel ships it."""
    res = vm.run_guest_script(
        f"cd /selftests/livepatch && KDIR=/klp exec bash ./{name}\n",
        runner="bash",
        timeout=timeout,
    )
    passed, failed = count_results(res.stdout)
    return SelftestResult(name, res, passed, failed)


def save_logs(results: list[SelftestResult], dest: Path, header: str) -> None:
    """Write ``<script>.dmesg``, ``<script>.filtered`` and ``<script>.out``."""
    dest.mkdir(parents=True, exist_ok=True)
    for r in results:
        stem = r.name.removesuffix(".sh")
        (dest / f"{stem}.dmesg").write_text("\n".join(r.result.log_lines) + "\n")
        (dest / f"{stem}.filtered").write_text(
            "\n".join(check_result_view(r.result.log_lines)) + "\n"
        )
        (dest / f"{stem}.out").write_text(r.result.stdout)
    summary = [header]
    for r in results:
        summary.append(
            f"{r.name}: exit {r.result.exit_status}, {len(r.passed)} ok, "
            f"{len(r.failed)} not ok, {r.result.seconds:.1f} s"
        )
    (dest / "SUMMARY").write_text("\n".join(summary) + "\n")
