"""``klpsim run --html``: the page's content without a browser (tests/browser
checks it in chromium)."""

import re

from harness import ROOT, klpsim

EXAMPLE = ROOT / "examples" / "livepatch-at-work.sh"


def lanes(page: str) -> list[tuple[str, str]]:
    return re.findall(
        r'<div class="lane" data-kind="(\w+)"[^>]*><div class="label"[^>]*>([^<]*)', page
    )


def test_the_page_has_the_lanes_and_loads_nothing(tmp_path):
    out = tmp_path / "page.html"
    plain = klpsim("run", str(EXAMPLE))
    r = klpsim("run", "--html", str(out), str(EXAMPLE))
    assert r.status == 0
    assert r.out == plain.out  # the transcript is the same
    assert r.err == f"klpsim: wrote {out}; open it in a web browser: {out.resolve().as_uri()}\n"
    page = out.read_text()
    assert ("func", "cmdline_proc_show") in lanes(page)
    assert ("task", "1001 reader") in lanes(page)
    assert [name for kind, name in lanes(page) if kind == "owner"] == ["set 0", "set 1"]
    # self-contained: no URL, no external script, style or image
    assert not re.search(r"(src|href)=|https?://|@import|url\((?!#)", page)
    # the script lines and the log, with the notes, are on the page
    assert "<code>sleep_task 1001 cmdline_proc_show</code>" in page
    assert "klpsim: note: &#x27;lp_cmdline_v2&#x27; is still patching" in page


def test_a_stalled_task_lane_is_red_while_it_blocks(tmp_path):
    out = tmp_path / "page.html"
    assert klpsim("run", "--html", str(out), str(EXAMPLE)).status == 0
    page = out.read_text()
    lane = page[page.index('data-pid="1001"') :].split("</div></div>")[0]
    assert (
        'fill="#d62728" class="blk"><title>1001 reader blocks 3.000 - 6.000 in cmdline_proc_show'
        in lane
    )


def test_html_to_a_bad_path_is_one_line(tmp_path):
    r = klpsim("run", "--html", str(tmp_path / "no" / "x.html"), str(EXAMPLE))
    assert r.status == 2
    assert (
        r.err.splitlines()[-1]
        == f"klpsim: --html {tmp_path / 'no' / 'x.html'}: No such file or directory"
    )
