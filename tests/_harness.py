"""Shared test helpers: run klpsim in-process, as the ``klpsim`` command would."""

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from klpsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
SELFTESTS = ROOT / "tests" / "selftests"


class Run:
    def __init__(self, status: int, out: str, err: str):
        self.status = status
        self.out = out
        self.err = err


def klpsim(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as e:  # argparse
            status = e.code
    return Run(status, out.getvalue(), err.getvalue())
