"""The README's headline commands, as a new user types them.

The first one (make a venv, ``pip install .``, run the example) runs here,
word for word, in a copy of the project: a non-editable install, which
must also find the data klpsim ships (the semantics scenarios) from
anywhere. The second one, ``bash .ci/run``, is CI itself: it must name the
script that exists.
"""

import re
import shutil
import subprocess

from harness import ROOT, klpsim

IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache",
    ".hypothesis", ".mypy_cache", "build", "dist", "fuzz-failures",
)  # fmt: skip


def headline_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_the_second_headline_command_is_ci():
    assert headline_commands()[1] == "bash .ci/run"
    assert (ROOT / ".ci" / "run").is_file()


def test_the_first_headline_command_as_written(tmp_path):
    first = headline_commands()[0]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -q . && ")
    project = tmp_path / "klpsim"
    shutil.copytree(ROOT, project, ignore=IGNORE)
    r = subprocess.run(
        ["bash", "-c", first], cwd=project, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stderr
    script = first.rsplit(" ", 1)[1]
    assert r.stdout == klpsim("run", str(ROOT / script)).out
    # The installed command, away from the source tree, reads what it ships.
    installed = project / ".venv" / "bin" / "klpsim"
    for argv, expected in (
        (["semantics"], (ROOT / "docs" / "semantics.md").read_text()),
        (["truth-table"], (ROOT / "docs" / "truth-table.md").read_text()),
        (["kernels"], klpsim("kernels").out),
    ):
        r = subprocess.run(
            [str(installed), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert (r.returncode, r.stderr) == (0, ""), argv
        assert r.stdout == expected, argv
