"""The ``klpsim run --html`` page in a real browser: Debian's chromium,
headless (installed by .ci/browser-deps; .ci/run runs this folder).

It loads the page of examples/livepatch-at-work.sh, checks the DOM the
browser has after the page's script ran (the lanes and labels the scenario
must produce), and takes a screenshot, kept under ci-artifacts/html/ (or
$KLPSIM_ARTIFACTS/html/). A missing chromium fails the test: run
.ci/browser-deps first.
"""

import os
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import klpsim  # noqa: E402

EXAMPLE = ROOT / "examples" / "livepatch-at-work.sh"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("KLPSIM_ARTIFACTS", ROOT / "ci-artifacts")) / "html"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed: run .ci/browser-deps (as root)"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


class Lanes(HTMLParser):
    """The lanes of a page: (kind, label, data-* attributes), and other bits."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes: list[dict[str, str]] = []
        self._label = False
        self.ids: dict[str, str] = {}
        self._id: str | None = None
        self.body: dict[str, str] = {}
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a and tag in ("script", "link", "img", "iframe"):
                self.external.append(a[key])
        if tag == "div" and "lane" in a.get("class", "").split() and "data-kind" in a:
            self.lanes.append(dict(a))
        elif tag == "div" and a.get("class") == "label" and self.lanes:
            self._label = True
        if "id" in a:
            self._id = a["id"]

    def handle_data(self, data):
        if self._label:
            self.lanes[-1]["label"] = self.lanes[-1].get("label", "") + data
        if self._id is not None:
            self.ids[self._id] = self.ids.get(self._id, "") + data

    def handle_endtag(self, tag):
        if tag == "div":
            self._label = False
        if tag in ("span", "p", "div"):
            self._id = None


def dom_of(tmp_path: Path, page: Path) -> Lanes:
    r = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    lanes = Lanes()
    lanes.feed(r.stdout)
    return lanes


def test_the_example_page_in_chromium(tmp_path):
    page = tmp_path / "livepatch-at-work.html"
    run = klpsim("run", "--html", str(page), str(EXAMPLE))
    assert run.status == 0, run.err
    dom = dom_of(tmp_path, page)
    assert dom.body.get("data-ready") == "1", "the page's script did not run"
    assert dom.external == [], "the page must not load anything"
    by_kind: dict[str, list[str]] = {}
    for lane in dom.lanes:
        by_kind.setdefault(lane["data-kind"], []).append(lane.get("label", ""))
    assert by_kind["owner"] == ["set 0", "set 1"]
    assert by_kind["func"] == ["cmdline_proc_show", "meminfo_proc_show", "version_proc_show"]
    # one transition stalled: reader sleeps in lp_cmdline_v1's code
    assert by_kind["task"] == ["1001 reader"]
    stalled = [lane for lane in dom.lanes if lane["data-kind"] == "task"]
    assert stalled[0]["data-stalled"] == "1" and stalled[0]["data-pid"] == "1001"
    # per transition: 6 kthreads, the shell and 2 idle tasks (the reader stalls the third)
    assert by_kind["tasks"] == ["9 tasks switched promptly"] * 3
    # filled in by the page's script, from the lanes the browser built
    assert dom.ids["summary"] == "3 function lanes, 2 ownership lanes, 1 stalled task lanes"


def test_screenshot_of_the_example(tmp_path):
    page = tmp_path / "livepatch-at-work.html"
    assert klpsim("run", "--html", str(page), str(EXAMPLE)).status == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "livepatch-at-work.png"
    shot.unlink(missing_ok=True)
    r = chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1400,900", "--hide-scrollbars",
        page.as_uri(),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 900)
    assert len(data) > 30_000, "a near-empty screenshot"


@pytest.mark.parametrize("fold", [True])
def test_a_page_at_scale_folds(tmp_path, fold):
    from html_bench import FUNCS, STALLERS, scale_session

    from klpsim.tools.html import render_html

    page = tmp_path / "scale.html"
    page.write_text(render_html(scale_session()))
    dom = dom_of(tmp_path, page)
    kinds = [lane["data-kind"] for lane in dom.lanes]
    assert kinds.count("func") == FUNCS
    assert kinds.count("owner") == 4
    # 20 transitions; the tasks that switched at once fold into one lane each,
    # and only the three stalled tasks get lanes of their own
    assert kinds.count("tasks") == 20
    assert kinds.count("task") == STALLERS
    assert (
        dom.ids["summary"]
        == f"{FUNCS} function lanes, 4 ownership lanes, {STALLERS} stalled task lanes"
    )
