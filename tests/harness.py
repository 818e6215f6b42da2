"""The one test harness: klpsim's command line in-process, and a Session
with a shell to drive it."""

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from klpsim.cli import main
from klpsim.scenario.parser import parse_script
from klpsim.scenario.runner import Runner
from klpsim.session import Session

ROOT = Path(__file__).resolve().parent.parent
SELFTESTS = ROOT / "tests" / "selftests"
CANARY = "livepatch kselftest timestamp:"


class Run:
    """What a klpsim command did."""

    def __init__(self, status: int, out: str, err: str):
        self.status = status
        self.out = out
        self.err = err


def klpsim(*argv: str) -> Run:
    """``klpsim ARGV...`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as e:  # argparse
            status = e.code
    return Run(status, out.getvalue(), err.getvalue())


class Sim(Session):
    """A session on 7.1 by default, with helpers for unit tests."""

    def __init__(
        self,
        profile: str = "7.1",
        module_dirs: list[Path] | None = None,
        config_overrides: dict[str, bool] | None = None,
        **kw: Any,
    ):
        super().__init__(
            profile, module_dirs=module_dirs or (), config=config_overrides, path="<test>", **kw
        )

    @property
    def rt(self) -> Runner:
        return self.runner

    def sh(self, script: str) -> str:
        """Run commands; return what they printed on stdout."""
        start = self.out.tell()
        status = self.run(script)
        if status:
            raise AssertionError(f"script failed ({status}): {self.err.getvalue()}")
        return self.out.getvalue()[start:]

    def read(self, path: str) -> str:
        data = self.kernel.fs.read(path)
        assert not isinstance(data, int), f"{path}: {data}"
        return data.rstrip("\n")

    def write(self, path: str, text: str, append: bool = False) -> int:
        """``echo TEXT > PATH`` (``>>`` with *append*): the open's or the write's result."""
        return self.kernel.fs.write(path, text, append)

    def klp_lines(self) -> list[str]:
        return [line for line in self.kernel.log.dmesg() if line.startswith("livepatch:")]

    def tick(self, seconds: float) -> None:
        self.kernel.clock.advance(int(seconds * 1e9))


def expected_block(path: Path) -> str:
    """The check_result block of a scenario script."""
    (cmd,) = [c for c in parse_script(path.read_text(), str(path)) if c.words[0] == "check_result"]
    return cmd.words[1]


def after_last_canary(lines: list[str]) -> list[str]:
    idx = max(i for i, line in enumerate(lines) if line.startswith(CANARY))
    return lines[idx + 1 :]
