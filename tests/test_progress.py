"""Progress on long commands: plain lines off a terminal, rich's bar on one,
and rich never imported at start-up."""

import io
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import klpsim.progress as progress_mod
from harness import ROOT
from klpsim.progress import progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_count_and_time_left(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", clock)
    out = io.StringIO()
    with progress("fuzz", 4, stream=out) as bar:
        assert type(bar) is progress_mod.Progress  # not a terminal
        bar.log("fuzz: kernel 6.12, seed 7, 4 scenarios")
        clock.now += 120  # preparing: not an item's time
        bar.advance("fuzz_7_0: same")
        clock.now += 10
        bar.advance("fuzz_7_1: DIFFERS")
        clock.now += 10
        bar.advance("fuzz_7_2: same")
        clock.now += 10
        bar.advance("fuzz_7_3: same")
    assert out.getvalue().splitlines() == [
        "klpsim: fuzz: kernel 6.12, seed 7, 4 scenarios",
        "klpsim: fuzz: [1/4] fuzz_7_0: same (2:00)",
        "klpsim: fuzz: [2/4] fuzz_7_1: DIFFERS (2:10, about 20 s left)",
        "klpsim: fuzz: [3/4] fuzz_7_2: same (2:20, about 10 s left)",
        "klpsim: fuzz: [4/4] fuzz_7_3: same (2:30)",
    ]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_richs_bar():
    out = Tty()
    with progress("selftests", 3, stream=out) as bar:
        assert not bar.plain
        bar.log("booted in 3.2 s")
        bar.advance("test-livepatch.sh: 5 ok, 0 not ok")
        bar.advance("test-state.sh: 4 ok, 0 not ok")
    text = out.getvalue()
    assert "klpsim: booted in 3.2 s" in text
    assert "2/3" in text and "klpsim: selftests" in text


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch):
    def no_rich(*a, **k):
        raise ImportError("no rich")

    monkeypatch.setattr(progress_mod._RichProgress, "__init__", no_rich)
    out = Tty()
    bar = progress("diff", 2, stream=out)
    assert bar.plain
    bar.advance("a.sh: same")
    assert out.getvalue().startswith("klpsim: diff: [1/2] a.sh: same (")


def test_start_up_does_not_import_rich_or_the_progress_module():
    code = "import sys, klpsim.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich',) or m == 'klpsim.progress'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT / "src")}, check=True)  # fmt: skip
    assert r.stdout.strip() == "[]"


def test_vm_selftests_advance_one_by_one(monkeypatch, tmp_path):
    """klpsim vm --selftests with a fake kernel: one progress item per selftest."""
    import klpsim.real.vm.api as api
    import klpsim.real.vm.cli as vm_cli

    sdir = tmp_path / "selftests"
    sdir.mkdir()
    for n in ("test-a.sh", "test-b.sh", "test-c.sh"):
        (sdir / n).write_text("")

    class FakeKernel:
        kver = "6.12.0-fake"

        def __init__(self, log):
            self.log = log
            self.tree = SimpleNamespace(selftests_dir=sdir)
            log("kernel 6.12: downloading")
            log("kernel 6.12: unpacking")

        @contextmanager
        def boot(self):
            yield SimpleNamespace(boot_seconds=[1.0])

        def run_selftests(self, vm, names):
            (name,) = names
            self.log(f"6.12 {name}: 1 ok, 0 not ok")
            return [SimpleNamespace(name=name, passed=["x"], failed=[], ok=True)]

    monkeypatch.setattr(api, "prepare", lambda kernel, log: FakeKernel(log))
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    status = vm_cli.main(["--kernel", "6.12", "--selftests"], progress=progress)
    assert status == 0
    lines = [line.split(" (")[0] for line in err.getvalue().splitlines()]
    assert lines[:2] == [
        "klpsim vm: 6.12: prepare: [1] kernel 6.12: downloading",
        "klpsim vm: 6.12: prepare: [2] kernel 6.12: unpacking",
    ]
    assert [ln for ln in lines if "selftests: [" in ln] == [
        "klpsim vm: 6.12: selftests: [1/3] test-a.sh: 1 ok, 0 not ok",
        "klpsim vm: 6.12: selftests: [2/3] test-b.sh: 1 ok, 0 not ok",
        "klpsim vm: 6.12: selftests: [3/3] test-c.sh: 1 ok, 0 not ok",
    ]
    # each selftest said once, not also by run_selftests()'s own log line
    assert not any(ln.startswith("klpsim vm: 6.12 test-") for ln in lines)
    assert out.getvalue() == "6.12 (6.12.0-fake): 3 passed, 0 failed\n"
    assert Path(sdir).is_dir()
