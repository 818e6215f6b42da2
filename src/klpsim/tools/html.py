"""``klpsim run --html OUT.html``: the run as one self-contained page.

Inline SVG and CSS, a few lines of plain JavaScript (click a script line,
a log line or an axis tick to put a cursor there), nothing fetched. All of
it is read from the model's event log (model/events.py), the runner's
command history and the kernel log:

* **set ownership**: one lane per replace set (per patch on a kernel
  without sets): which patch owns it, and which one is in transition;
* **functions**: one lane per patched function, its func_stack over time:
  the top entry's colour (by patch, hue by set), the entries below as thin
  strips, hatched while the top entry's patch is in transition, grey for a
  nop (the original runs). Lanes group by the set (or patch) that patched
  the function first, and fold;
* **transitions**: one group per transition; the tasks that switched by the
  first retry fold into one summary lane, every task that stalled it gets
  its own lane, red while it blocked;
* the **script** and the **kernel log** beside the time axis.

The time axis is compressed: each gap between two things that happened is
drawn by the logarithm of its length, so that milliseconds of work and a
minute of waiting both stay readable; tick labels give the real time.
"""

from __future__ import annotations

import bisect
import math
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from klpsim.livepatch.events import (
    FuncStackChanged,
    PatchEnabled,
    PatchRefused,
    StackEntry,
    TaskSwitched,
    TransitionBlocked,
    TransitionEvent,
    TransitionPhase,
    TransitionTarget,
)
from klpsim.tools.timeline import Transition, collect

if TYPE_CHECKING:
    from klpsim.model.events import Stamped
    from klpsim.session import Session

__all__ = ["render_html", "write_html", "LABEL_W"]

LABEL_W = 230
LANE_H = 18
MIN_GAP_PX = 6.0
PX_PER_DECADE = 26.0
"""Axis: a gap of dt ns takes MIN_GAP_PX + PX_PER_DECADE * log10(1 + dt/1 ms)."""
HUES = (212, 28, 130, 280, 350, 180, 52, 310, 95, 240)


class Axis:
    """Compressed time -> x."""

    def __init__(self, times: set[int], end: int):
        self.times = sorted(times | {0, end})
        xs = [0.0]
        for a, b in zip(self.times, self.times[1:], strict=False):
            dt = (b - a) / 1e6
            xs.append(xs[-1] + MIN_GAP_PX + PX_PER_DECADE * math.log10(1 + dt))
        self.xs = xs
        self.width = xs[-1] + 40

    def x(self, t: int) -> float:
        i = bisect.bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            return self.xs[i]
        # between two known times: linear inside the gap
        a, b = self.times[i - 1], self.times[min(i, len(self.times) - 1)]
        xa, xb = self.xs[i - 1], self.xs[min(i, len(self.xs) - 1)]
        return xa if b == a else xa + (xb - xa) * (t - a) / (b - a)


class Colours:
    """A colour per patch: hue by set (or by patch without sets)."""

    def __init__(self, sets: dict[str, int | None]):
        self.sets = sets
        self._per_set: dict[object, list[str]] = {}
        self._colour: dict[str, str] = {}

    def of(self, patch: str) -> str:
        c = self._colour.get(patch)
        if c is None:
            rs = self.sets.get(patch)
            key: object = ("set", rs) if rs is not None else ("patch", patch)
            members = self._per_set.setdefault(key, [])
            members.append(patch)
            group = list(self._per_set).index(key)
            hue = HUES[group % len(HUES)]
            light = (38, 55, 68, 46, 62)[(len(members) - 1) % 5]
            c = self._colour[patch] = f"hsl({hue},62%,{light}%)"
        return c


def _n(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _s(ns: int) -> str:
    return f"{ns / 1e9:.3f}"


class _Svg:
    """One lane's SVG."""

    def __init__(self, width: float, height: int = LANE_H):
        self.parts: list[str] = []
        self.width = width
        self.height = height

    def rect(
        self, x0: float, x1: float, fill: str, title: str, y: float = 2, h: float = LANE_H - 4,
        cls: str = "",
    ) -> None:  # fmt: skip
        w = max(x1 - x0, 1.5)
        c = f' class="{cls}"' if cls else ""
        self.parts.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}"{c}>'
            f"<title>{escape(title)}</title></rect>"
        )

    def text(self, x: float, s: str, cls: str = "t") -> None:
        self.parts.append(f'<text x="{x:.1f}" y="{LANE_H - 5}" class="{cls}">{escape(s)}</text>')

    def html(self) -> str:
        return (
            f'<svg width="{self.width:.0f}" height="{self.height}">'
            + "".join(self.parts)
            + "</svg>"
        )


def _lane(kind: str, label: str, svg: _Svg, title: str = "", **data: object) -> str:
    attrs = "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items())
    tip = f' title="{escape(title)}"' if title else ""
    return (
        f'<div class="lane" data-kind="{kind}"{attrs}><div class="label"{tip}>{escape(label)}</div>'
        f"{svg.html()}</div>"
    )


class _Run(NamedTuple):
    records: list[Stamped]
    history: list[tuple[int, int, str]]
    log: list[tuple[int, int, str]]
    """(time, level, text); level -1: a klpsim note."""
    end: int
    title: str
    profile: str


def render_html(
    session: Session, notes: list[tuple[int, str]] | None = None, title: str = ""
) -> str:
    """The page for everything *session* has run so far; *notes*: what
    Session.record_notes() kept, shown in the log."""
    log = [(r.ts_ns, r.level, r.text) for r in session.kernel.log.records]
    if notes:
        log = sorted(
            log + [(t, -1, f"klpsim: note: {text}") for t, text in notes], key=lambda r: r[0]
        )
    run = _Run(
        session.system.events.records,
        session.runner.history,
        log,
        session.kernel.clock.now,
        title or session.path,
        session.system.profile.name,
    )
    return _render(run)


def write_html(session: Session, path: str, notes: list[tuple[int, str]] | None = None) -> None:
    Path(path).write_text(render_html(session, notes))


def _render(run: _Run) -> str:
    lives, transitions = collect(run.records, run.end)
    sets: dict[str, int | None] = {}
    stacks: dict[str, list[tuple[int, tuple[StackEntry, ...]]]] = {}
    switched: list[tuple[int, TaskSwitched]] = []
    first_retry: dict[int, int] = {}  # transition start -> first retry time
    starts: list[int] = []
    times: set[int] = set()
    for rec in run.records:
        e = rec.event
        if isinstance(e, FuncStackChanged):
            stacks.setdefault(e.function, []).append((rec.ts_ns, e.stack))
            times.add(rec.ts_ns)
        elif isinstance(e, PatchEnabled | PatchRefused):
            sets.setdefault(e.patch, e.replace_set)
        elif isinstance(e, TaskSwitched):
            switched.append((rec.ts_ns, e))
        elif isinstance(e, TransitionEvent):
            times.add(rec.ts_ns)
            if e.phase is TransitionPhase.START:
                starts.append(rec.ts_ns)
        elif isinstance(e, TransitionBlocked) and starts and rec.ts_ns > starts[-1]:
            first_retry.setdefault(starts[-1], rec.ts_ns)
            times.add(rec.ts_ns)
    times.update(t for t, _, _ in run.history)
    times.update(t for t, _, _ in run.log)
    for tr in transitions:
        times.update(b.start_ns for b in tr.blocked)
        times.update(b.end_ns for b in tr.blocked)
    axis = Axis(times, run.end)
    colours = Colours(sets)
    for life in lives:
        colours.of(life.name)
    in_transition = [(t.patch, t.start_ns, t.end_ns if t.end_ns is not None else run.end)
                     for t in transitions]  # fmt: skip
    body = [
        _header(run, lives, colours, sets),
        '<div id="chart"><div id="cursor"></div>',
        _axis(axis, run),
        _ownership(axis, lives, colours, sets, run.end),
        _functions(axis, stacks, colours, sets, in_transition, run.end),
        _transitions(axis, transitions, switched, first_retry, colours, run.end),
        "</div>",
        _tables(axis, run),
    ]
    return PAGE.format(title=escape(f"klpsim: {run.title}"), css=CSS, js=JS, body="\n".join(body))


def _header(run: _Run, lives: list, colours: Colours, sets: dict[str, int | None]) -> str:
    legend = []
    for life in lives:
        rs = sets.get(life.name)
        tag = f" (set {rs})" if rs is not None else ""
        legend.append(
            f'<span class="key"><i style="background:{colours.of(life.name)}"></i>'
            f"{escape(life.name)}{tag}</span>"
        )
    legend.append('<span class="key"><i class="orig"></i>original code (empty or nop)</span>')
    legend.append('<span class="key"><i class="hatch"></i>in transition</span>')
    legend.append('<span class="key"><i style="background:#d62728"></i>task blocking</span>')
    return (
        f"<h1>{escape(run.title)}</h1>"
        f'<p class="sub">kernel profile {escape(run.profile)}; simulated time 0 to '
        f"{_s(run.end)} s, axis compressed (gaps drawn by their logarithm); "
        f'<span id="summary"></span></p>'
        f'<p class="legend">{"".join(legend)}</p>'
    )


def _axis(axis: Axis, run: _Run) -> str:
    svg = _Svg(axis.width, 30)
    last = -1e9
    for t, x in zip(axis.times, axis.xs, strict=True):
        if x - last >= 48:
            svg.parts.append(f'<line x1="{x:.1f}" y1="18" x2="{x:.1f}" y2="30" class="tick"/>')
            svg.parts.append(f'<text x="{x + 2:.1f}" y="12" class="ax">{_s(t)}</text>')
            last = x
    for t, line, text in run.history:
        x = axis.x(t)
        svg.parts.append(
            f'<rect x="{x - 1:.1f}" y="20" width="3" height="10" class="cmd" data-x="{x:.1f}">'
            f"<title>{escape(f'{line}: {text}')}</title></rect>"
        )
    return f'<div class="lane axis"><div class="label">time (s) / script commands</div>{svg.html()}</div>'


def _ownership(
    axis: Axis, lives: list, colours: Colours, sets: dict[str, int | None], end: int
) -> str:
    lanes: dict[str, _Svg] = {}
    with_sets = any(v is not None for v in sets.values())
    for life in lives:
        rs = sets.get(life.name)
        key = f"set {rs}" if with_sets and rs is not None else life.name
        loaded = patched = gone = None
        for t, what in life.steps:
            if what == "loaded" and loaded is None:
                loaded = t
            elif what == "patched" and patched is None:
                patched = t
            elif what.startswith(
                ("replaced by", "disabled", "unpatched", "reversed to unpatching")
            ):
                gone = t if gone is None else gone
        if loaded is None:
            continue  # refused: it never owned anything
        svg = lanes.setdefault(key, _Svg(axis.width))
        colour = colours.of(life.name)
        stop = gone if gone is not None else end
        if patched is None or patched > loaded:
            upto = patched if patched is not None else stop
            svg.rect(axis.x(loaded), axis.x(upto), "url(#hatch)", f"{life.name}: in transition",
                     y=LANE_H / 2, h=LANE_H / 2 - 2)  # fmt: skip
            svg.rect(axis.x(loaded), axis.x(upto), colour, f"{life.name}: in transition",
                     y=LANE_H / 2, h=LANE_H / 2 - 2, cls="under")  # fmt: skip
        if patched is not None:
            svg.rect(axis.x(patched), axis.x(stop), colour,
                     f"{life.name} owns it {_s(patched)} - {_s(stop)}")  # fmt: skip
            svg.text(axis.x(patched) + 3, life.name)
    title = "Set ownership" if with_sets else "Patches"
    rows = "".join(_lane("owner", k, v, name=k) for k, v in lanes.items())
    return f'<details open class="group"><summary>{title}</summary>{rows}</details>'


def _functions(
    axis: Axis, stacks: dict, colours: Colours, sets: dict, in_tr: list, end: int
) -> str:
    groups: dict[str, list[str]] = {}
    for func, changes in stacks.items():
        first = next((st[0].patch for _, st in changes if st), None)
        if first is None:
            continue
        rs = sets.get(first)
        key = f"set {rs}" if rs is not None else first
        groups.setdefault(key, []).append(func)
    out = ['<details open class="group"><summary>Functions (func_stack, top entry)</summary>']
    for key, funcs in groups.items():
        lanes = []
        for func in funcs:
            changes = stacks[func]
            svg = _Svg(axis.width)
            for (t, st), nxt in zip(changes, changes[1:] + [(end, ())], strict=True):
                t1 = nxt[0]
                if not st:
                    continue
                x0, x1 = axis.x(t), axis.x(t1)
                top = st[0]
                names = " over ".join(f"{e.patch}{' (nop)' if e.nop else ''}" for e in st)
                tip = f"{func} {_s(t)} - {_s(t1)}: {names}"
                svg.rect(x0, x1, "#e3e3e3" if top.nop else colours.of(top.patch), tip)
                for depth, e in enumerate(st[1:4]):
                    svg.rect(x0, x1, "#e3e3e3" if e.nop else colours.of(e.patch), tip,
                             y=LANE_H - 5 - 3 * depth, h=2.5)  # fmt: skip
                for patch, a, b in in_tr:
                    if patch == top.patch and a < t1 and b > t:
                        svg.rect(axis.x(max(a, t)), axis.x(min(b, t1)), "url(#hatch)",
                                 f"{tip} (in transition)", cls="tr")  # fmt: skip
            lanes.append(_lane("func", func, svg, name=func))
        out.append(
            f'<details open class="sub"><summary>{escape(key)}: {_n(len(funcs), "function")}'
            "</summary>" + "".join(lanes) + "</details>"
        )
    out.append("</details>")
    return "".join(out)


def _transitions(
    axis: Axis, transitions: list[Transition], switched: list, first_retry: dict, colours: Colours,
    end: int,
) -> str:  # fmt: skip
    out = ['<details open class="group"><summary>Transitions (per-task patch_state)</summary>']
    for n, tr in enumerate(transitions, 1):
        stop = tr.end_ns if tr.end_ns is not None else end
        retry = first_retry.get(tr.start_ns, stop)
        mine = [(t, e) for t, e in switched if tr.start_ns <= t <= stop and e.how != "fork"]
        stalled = {b.pid for b in tr.blocked}
        when: dict[int, tuple[int, TaskSwitched]] = {}
        for t, e in mine:
            when[e.pid] = (t, e)
            if t > retry:
                stalled.add(e.pid)
        prompt = [p for p in when if p not in stalled]
        target = colours.of(tr.patch) if tr.target is TransitionTarget.PATCHED else "#b0b0b0"
        x0, x1 = axis.x(tr.start_ns), axis.x(stop)
        lanes = []
        svg = _Svg(axis.width)
        last = max((when[p][0] for p in prompt), default=tr.start_ns)
        svg.rect(x0, axis.x(last), "#cfcfcf", "not yet switched")
        svg.rect(axis.x(last), x1, target, f"switched by {_s(last)}")
        lanes.append(
            _lane("tasks", f"{_n(len(prompt), 'task')} switched promptly", svg, count=len(prompt))
        )
        names = {b.pid: b.comm for b in tr.blocked}
        names.update({p: e.comm for p, (_, e) in when.items()})
        for pid in sorted(stalled):
            svg = _Svg(axis.width)
            sw = when.get(pid)
            at = sw[0] if sw else stop
            svg.rect(x0, axis.x(at), "#cfcfcf", f"{pid} {names[pid]}: not switched")
            for b in tr.blocked:
                if b.pid == pid:
                    where = f" in {b.function}" if b.function else f" ({b.why})"
                    svg.rect(axis.x(b.start_ns), axis.x(b.end_ns), "#d62728",
                             f"{pid} {names[pid]} blocks {_s(b.start_ns)} - {_s(b.end_ns)}{where}",
                             cls="blk")  # fmt: skip
            if sw:
                how = sw[1].how
                svg.rect(
                    axis.x(at), x1, target, f"{pid} {names[pid]}: switched ({how}) at {_s(at)}"
                )
            label = f"{pid} {names[pid]}"
            lanes.append(_lane("task", label, svg, pid=pid, stalled=1))
        extra = ""
        if tr.forced_ns is not None:
            extra += f", forced at {_s(tr.forced_ns)}"
        if tr.end_ns is None:
            extra += ", still running"
        head = (
            f"{escape(tr.patch)} {tr.target.verb} {_s(tr.start_ns)} - {_s(stop)} s"
            f"{extra}: {len(stalled)} stalled"
        )
        is_open = " open" if stalled else ""
        out.append(
            f'<details class="sub transition" data-n="{n}"{is_open}><summary>{head}</summary>'
            + "".join(lanes)
            + "</details>"
        )
    out.append("</details>")
    return "".join(out)


def _tables(axis: Axis, run: _Run) -> str:
    script = [
        f'<tr data-x="{axis.x(t):.1f}"><td>{line}</td><td>{_s(t)}</td>'
        f"<td><code>{escape(text)}</code></td></tr>"
        for t, line, text in run.history
    ]
    log = [
        f'<tr data-x="{axis.x(t):.1f}" class="{"note" if level < 0 else f"lv{min(level, 7)}"}">'
        f"<td>{_s(t)}</td>"
        f"<td><code>{escape(text)}</code></td></tr>"
        for t, level, text in run.log
    ]
    return (
        '<div class="tables"><div><h2>Script</h2><table id="script"><tr><th>line</th><th>time</th>'
        f"<th>command</th></tr>{''.join(script)}</table></div>"
        '<div><h2>Kernel log</h2><table id="log"><tr><th>time</th><th>message</th></tr>'
        f"{''.join(log)}</table></div></div>"
    )


CSS = f"""
body{{font:13px/1.35 system-ui,sans-serif;margin:16px;color:#222}}
h1{{font-size:18px;margin:0 0 4px}} h2{{font-size:14px;margin:8px 0}}
.sub{{color:#555;margin:0 0 6px}} .legend .key{{margin-right:14px;white-space:nowrap}}
.key i{{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:-1px;border:1px solid #999}}
.key i.orig{{background:#e3e3e3}} .key i.hatch{{background:repeating-linear-gradient(45deg,#999 0 2px,#fff 2px 5px)}}
#chart{{position:relative;overflow-x:auto;border:1px solid #ccc;padding-bottom:4px}}
#cursor{{position:absolute;top:0;bottom:0;width:2px;background:#e377c2;display:none;z-index:3;pointer-events:none}}
.lane{{display:flex;align-items:center;height:{LANE_H}px}}
.lane .label{{position:sticky;left:0;z-index:2;flex:0 0 {LABEL_W}px;width:{LABEL_W}px;background:#fff;
 overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font:12px monospace;padding-left:6px;box-sizing:border-box}}
.lane.axis{{height:30px}} .lane svg{{flex:0 0 auto}}
.lane:hover .label{{background:#ffd}}
details.group>summary{{font-weight:600;background:#f2f2f2;padding:2px 6px;position:sticky;left:0}}
details.sub>summary{{padding:1px 16px;color:#333;position:sticky;left:0}}
text.t{{font:10px monospace;fill:#fff;pointer-events:none}} text.ax{{font:10px monospace;fill:#444}}
line.tick{{stroke:#888}} rect.cmd{{fill:#555;cursor:pointer}} rect.under{{opacity:.35}}
rect.blk{{stroke:#7a0000;stroke-width:1}}
.tables{{display:flex;gap:24px;margin-top:12px}} .tables>div{{flex:1;min-width:0;max-height:420px;overflow:auto}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:0 6px;vertical-align:top}}
tr[data-x]{{cursor:pointer}} tr[data-x]:hover{{background:#eef}} tr.hl{{background:#fde}}
tr.lv0 code,tr.lv1 code,tr.lv2 code,tr.lv3 code,tr.lv4 code{{color:#9a5b00}}
code{{white-space:pre-wrap}} tr.note code{{color:#7b3fa0;font-style:italic}}
"""

JS = """
const chart=document.getElementById('chart'),cur=document.getElementById('cursor');
function at(x){cur.style.left=(LABEL_W+x)+'px';cur.style.display='block';
 chart.scrollLeft=Math.max(0,x-200);
 document.querySelectorAll('.hl').forEach(e=>e.classList.remove('hl'));
 document.querySelectorAll('tr[data-x="'+x.toFixed(1)+'"]').forEach(e=>e.classList.add('hl'));}
document.querySelectorAll('[data-x]').forEach(e=>e.addEventListener('click',()=>at(+e.dataset.x)));
const n=k=>document.querySelectorAll('.lane[data-kind="'+k+'"]').length;
document.getElementById('summary').textContent=
 n('func')+' function lanes, '+n('owner')+' ownership lanes, '+n('task')+' stalled task lanes';
document.body.dataset.ready='1';
""".replace("LABEL_W", str(LABEL_W))

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body>
<svg width="0" height="0" style="position:absolute"><defs>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="6" height="6" fill="rgba(255,255,255,0)"/><line x1="0" y1="0" x2="0" y2="6" stroke="rgba(0,0,0,.45)" stroke-width="2"/>
</pattern></defs></svg>
{body}
<script>{js}</script>
</body></html>
"""
