"""klpsim explore: the family, the symmetry reduction against a naive
search, the same answers from every backend, and counterexamples that
``klpsim run --check`` reproduces."""

import dataclasses
import io
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from harness import ROOT, klpsim
from klpsim.tools import explore as ex
from klpsim.tools.explore import Bounds, LocalBackend, Model, explore, write_counterexample
from klpsim.tools.explore_backends import ProcessBackend

TINY = Bounds(
    "replace-set", patches=2, funcs=2, sets=2, states=0, tasks=2, depth=3, module_funcs=0,
    every=True,
)  # fmt: skip
"""Every symmetry at work (two vmlinux functions, two sets, two tasks) and small
enough for a naive search."""
CHAIN = Bounds("replace-set", patches=3, funcs=2, sets=2, states=1, tasks=2, depth=4)
"""The chain family: the symmetries that map it onto itself (the tasks only)."""
CHAIN_FREED = Bounds("7.1", patches=2, funcs=2, sets=1, states=0, tasks=0, depth=6)
"""A chain whose patches get disabled and freed, their modules still loaded
(what the state must tell apart: which lpI can be loaded again)."""
CHAIN_RENAMED = Bounds(
    "7.1", patches=2, funcs=4, sets=1, states=1, tasks=1, depth=4, module_funcs=0
)
"""A chain with a renaming that keeps it (the two functions no patch has)."""


def test_chain_family_overlaps_neighbours_within_and_across_sets():
    fam = ex.family(Bounds("replace-set", patches=6, funcs=3, sets=2, states=1, tasks=0, depth=1))
    assert [d.funcs for d in fam] == [(0,), (0, 1), (1,), (1, 2), (2,), (0, 2)]
    assert [d.replace_set for d in fam] == [0, 0, 1, 1, 0, 0]
    assert [d.states for d in fam] == [(), ((1, 1),), (), ((1, 2),), (), ((1, 1),)]
    assert {d.replace for d in fam} == {0} and {d.replaceable for d in fam} == {False}
    b = Bounds("replaceable", patches=3, funcs=2, sets=1, states=0, tasks=0, depth=1)
    lp1, lp2, lp3 = ex.family(b)  # Petr's funcA/funcB case
    assert (lp1.funcs, lp1.replaceable, lp1.replace) == ((0,), False, 0)
    assert (lp2.funcs, lp2.replaceable, lp2.replace) == ((0, 1), True, 0)
    assert (lp3.funcs, lp3.replace) == ((1,), 1)
    tags = ex.family(Bounds("replace-tag", patches=4, funcs=3, sets=2, states=0, tasks=0, depth=1))
    assert [d.replace for d in tags] == [0, 1, 0, 2]
    # a cumulative patch keeps the states before it (else the kernel refuses it)
    mainline = ex.family(Bounds("7.1", patches=4, funcs=3, sets=2, states=1, tasks=0, depth=1))
    assert [(d.replace, d.states) for d in mainline] == [
        (0, ()), (0, ((1, 1),)), (1, ((1, 1),)), (0, ((1, 2),)),
    ]  # fmt: skip


def test_every_definition_is_every_combination_of_the_fields_the_kernel_has():
    b = Bounds("replace-set", patches=2, funcs=3, sets=2, states=1, tasks=0, depth=1, every=True)
    fam = ex.family(b)
    assert fam == ex.every_definition(b)
    # 7 function subsets x 2 sets x (no state, id 1 at version 1 or 2); no replace field
    assert len(fam) == 7 * 2 * 3
    assert {d.replace for d in fam} == {0} and {d.replaceable for d in fam} == {False}
    assert len(ex.family(dataclasses.replace(b, profile="7.1"))) == 7 * 2 * 3  # replace, no sets
    assert len(ex.family(dataclasses.replace(b, profile="replaceable"))) == 7 * 2 * 2 * 3
    assert {d.replace for d in ex.family(dataclasses.replace(b, profile="replace-tag"))} == {
        0,
        1,
        2,
    }
    two = dataclasses.replace(b, states=2)
    assert len({d.states for d in ex.family(two)}) == 1 + 2 * 2 + 2 * 2  # none, one id, both


def test_family_definitions_are_valid_modules():
    b = Bounds("replaceable", patches=2, funcs=3, sets=2, states=1, tasks=0, depth=1, every=True)
    model = Model(b)
    assert model.names == ("cmdline_proc_show", "meminfo_proc_show", "tgt_func1")
    for d, text in zip(model.family, model.tomls, strict=True):
        data = tomllib.loads(text)
        funcs = [f["old_name"] for o in data["objects"] for f in o["funcs"]]
        assert funcs == [model.names[i] for i in d.funcs]
        assert data["replaceable"] == d.replaceable
    live = model.boot()
    for i in range(0, len(model.family), 7):  # each one builds and loads
        model.apply(live, (ex.LOAD, i), check=False)


def _naive(b: Bounds) -> tuple[set[bytes], set[bytes]]:
    """Breadth first with no reduction at all: a fresh replay for every step,
    the state with the names it has (a chain's loaded module names too,
    which the explorer's state leaves out). Returns the raw states and their
    canonical forms."""
    raw_model = Model(dataclasses.replace(b, symmetry=False))
    canon_model = Model(b)

    def raw_key(live: ex.Live) -> bytes:
        key = raw_model.key(live)[0]
        if b.every:  # names are lp<loads so far>: history, not state
            return key
        modules = live.session.kernel.modules.modules
        return key + repr(sorted(n for n in live.defs if n in modules)).encode()

    seen = {}
    live = raw_model.boot()
    frontier = [()]
    seen[raw_key(live)] = canon_model.key(live)[0]
    for _ in range(b.depth):
        nxt = []
        for path in frontier:
            for op in raw_model.ops(raw_model.replay(path)):
                live = raw_model.replay(path)
                raw_model.apply(live, op, check=False)
                raw = raw_key(live)
                if raw not in seen:
                    seen[raw] = canon_model.key(live)[0]
                    nxt.append((*path, op))
        frontier = nxt
    return set(seen), set(seen.values())


@pytest.mark.parametrize(
    "b, least",
    [(TINY, 3), (CHAIN, 1.2), (CHAIN_FREED, 1), (CHAIN_RENAMED, 1.1)],
    ids=["every", "chain", "chain-freed", "chain-renamed"],
)
def test_symmetry_reduction_loses_no_state(b, least):
    """The explorer's canonical states are exactly the canonical forms of the
    states a naive search finds, and its orbit sizes add up to the naive count."""
    backend = LocalBackend(b)
    result = explore(b, backend)
    raw, canonical = _naive(b)
    assert backend.workers[0].visited == canonical
    assert result.states == len(canonical)
    assert result.naive_states == len(raw)
    # every: functions, sets and tasks all interchangeable; chain: the tasks,
    # and the functions no patch has
    assert result.reduction >= least


def test_chain_symmetries_map_the_family_onto_itself():
    assert len(ex.symmetries(CHAIN)) == 1  # no renaming keeps the chain (tasks aside)
    b = Bounds("7.1", patches=2, funcs=4, sets=1, states=0, tasks=0, depth=1, module_funcs=0)
    assert [d.funcs for d in ex.family(b)] == [(0,), (0, 1)]
    assert len(ex.symmetries(b)) == 2  # the two functions no patch has may swap
    assert len(ex.symmetries(dataclasses.replace(b, every=True))) == 24


@pytest.mark.parametrize("b", [TINY, CHAIN, CHAIN_FREED], ids=["every", "chain", "chain-freed"])
def test_no_symmetry_is_the_naive_search(b):
    result = explore(dataclasses.replace(b, symmetry=False))
    raw, _ = _naive(b)
    assert result.states == result.naive_states == len(raw)


def test_a_chain_patch_loads_again_once_it_is_gone():
    """lpI is the family's I-th patch at every load: offered while lp<I> is
    not loaded (insmod would fail with File exists), again after rmmod."""
    b = Bounds("7.1", patches=1, funcs=1, sets=1, states=0, tasks=0, depth=1)
    model = Model(b)
    live = model.boot()
    for op in ((ex.LOAD, 0), (ex.TICK,), (ex.DISABLE, 1), (ex.TICK,)):
        assert op in model.ops(live)
        model.apply(live, op, check=False)
    assert (ex.LOAD, 0) not in model.ops(live)
    model.apply(live, (ex.UNLOAD, 1), check=False)
    assert (ex.LOAD, 0) in model.ops(live)
    model.apply(live, (ex.LOAD, 0), check=False)
    assert model.line(live, (ex.DISABLE, 1)) == "echo 0 > /sys/kernel/livepatch/lp1/enabled"
    assert live.session.kernel.modules.modules["lp1"].klp
    assert live.session.lines[-1] == "insmod test_modules/lp1.ko"


def _outcome(r: ex.Result) -> object:
    levels = [
        (lv.new, lv.orbit, lv.broken, lv.transitions, lv.replays, lv.undone) for lv in r.levels
    ]
    found = {k: (f.path, f.detail, f.count) for k, f in r.found.items()}
    return levels, found, r.exhausted


REPLACEABLE = Bounds(
    "replaceable", patches=3, funcs=2, sets=1, states=0, tasks=0, depth=5, module_funcs=0
)


@pytest.mark.parametrize(
    "b",
    [TINY, CHAIN, dataclasses.replace(REPLACEABLE, ops=("load", "tick", "attr"))],
    ids=["replace-set", "replace-set-chain", "replaceable"],
)
def test_two_processes_give_the_same_result_as_one(b):
    one = explore(b, LocalBackend(b))
    two = explore(b, ProcessBackend(b, 2))
    assert _outcome(two) == _outcome(one)
    split = explore(b, LocalBackend(b, 3))  # three partitions, in this process
    assert _outcome(split) == _outcome(one)


def test_replaceable_counterexample_is_the_shortest_and_reproduces(tmp_path):
    shallower = explore(dataclasses.replace(REPLACEABLE, depth=4))
    assert shallower.found == {}  # nothing breaks in 4 steps
    result = explore(REPLACEABLE)
    found = result.found["per-task-consistency"]
    assert len(found.path) == 5
    script, check = write_counterexample(REPLACEABLE, found, tmp_path)
    assert check is not None and "per-task-consistency" in check
    lines = [x for x in script.read_text().splitlines() if not x.startswith("#")]
    assert len(lines) == 5
    r = klpsim("run", "--check", "--kernel", "replaceable", str(script))
    assert r.status == 3
    assert "per-task-consistency" in r.err


@pytest.mark.parametrize("states", [0, 1])
def test_petr_counterexample_is_found_by_loads_and_ticks_alone(tmp_path, states):
    """With only loads and retry ticks, the shortest break is Petr's: a
    replace patch replaces a replaceable patch whose function a
    non-replaceable patch also patches (with a state or without)."""
    b = dataclasses.replace(REPLACEABLE, states=states, depth=6, ops=("load", "tick"))
    result = explore(b, first=True)
    found = result.found["per-task-consistency"]
    assert [op[0] for op in found.path] == [ex.LOAD, ex.TICK] * 3
    fam = Model(b).family
    assert [op[1] for op in found.path[::2]] == [0, 1, 2]  # lp1, lp2, lp3 in turn
    lp1, lp2, lp3 = (fam[op[1]] for op in found.path[::2])
    assert not lp1.replaceable and lp2.replaceable and lp3.replace
    # a function lp1 and lp2 patch and lp3 does not: lp3's nop for it goes
    # away with lp2, and it falls back to lp1 for every task at once
    assert set(lp1.funcs) & set(lp2.funcs) - set(lp3.funcs)
    script, check = write_counterexample(b, found, tmp_path)
    assert check is not None


@pytest.mark.parametrize("every", [False, True], ids=["chain", "every"])
@pytest.mark.parametrize("profile", ["7.1", "replace-set", "6.1"])
def test_the_consistency_model_holds_where_it_should(profile, every):
    b = Bounds(profile, patches=2, funcs=2, sets=2, states=1, tasks=1, depth=4, every=every)
    result = explore(b)
    assert result.found == {}
    assert result.states > 100


def test_explore_command(tmp_path):
    r = klpsim(
        "explore", "--kernel", "replaceable", "--patches", "3", "--funcs", "2",
        "--module-funcs", "0", "--sets", "1", "--states", "0", "--tasks", "0",
        "--depth", "5", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert r.status == 3, r.err
    assert "broken:        per-task-consistency" in r.out
    script = tmp_path / "replaceable" / "per-task-consistency" / "per-task-consistency.sh"
    assert f"counterexample: {script}" in r.out
    assert klpsim("run", "--check", "--kernel", "replaceable", str(script)).status == 3
    ok = klpsim(
        "explore", "--kernel", "7.1", "--patches", "1", "--funcs", "1", "--sets", "1",
        "--states", "0", "--tasks", "1", "--depth", "3", "--out", str(tmp_path),
    )  # fmt: skip
    assert ok.status == 0, ok.err
    assert "invariants:    all hold" in ok.out
    assert [x.split(":")[1] for x in ok.err.splitlines()] == [" explore"] * 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--patches", "0"], "--patches 0: must be at least 1"),
        (["--depth", "-3"], "--depth -3: must be at least 1"),
        (["--funcs", "0"], "--funcs 0: must be at least 1"),
        (["--sets", "0"], "--sets 0: must be at least 1"),
        (["--depth", "40"], "--depth 40: above 16 a search may run for days; --yes"),
        (["--depth", "400", "--yes"], "--depth 400: at most 200"),
        (["--tasks", "99"], "--tasks 99: at most 6"),
        (["--jobs", "0"], "--jobs 0: must be at least 1"),
        (["--kernel", "7.99"], "--kernel 7.99: unknown profile (see 'klpsim kernels')"),
        (["--ops", "load,fly"], "--ops fly: not one of load, disable, force, attr, unload,"),
        (["--funcs", "2", "--module-funcs", "3"], "--module-funcs 3: more than --funcs 2"),
    ],
)
def test_bad_bounds_are_one_line(args, message):
    r = klpsim("explore", *args)
    assert r.status == 2
    assert r.out == ""
    (line,) = r.err.splitlines()
    assert line.startswith(f"klpsim: {message}")


def test_ctrl_c_prints_the_statistics_so_far(monkeypatch, tmp_path):
    levels = []

    def interrupt(depth, r):
        levels.append(depth)
        if depth == 2:
            raise KeyboardInterrupt
        return ""

    monkeypatch.setattr(ex, "progress_line", interrupt)
    r = klpsim(
        "explore", "--kernel", "7.1", "--patches", "2", "--funcs", "2", "--tasks", "1",
        "--depth", "6", "--out", str(tmp_path),
    )  # fmt: skip
    assert r.status == 130
    assert levels == [0, 1, 2]
    assert "interrupted: the statistics so far" in r.out
    assert "depth reached: 2" in r.out


def test_progress_lines_off_a_terminal(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    from klpsim.cli import main

    with redirect_stdout(out), redirect_stderr(err):
        status = main(["explore", "--kernel", "7.1", "--patches", "1", "--funcs", "1",
                       "--sets", "1", "--states", "0", "--tasks", "0", "--depth", "2",
                       "--out", str(tmp_path)])  # fmt: skip
    assert status == 0
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("klpsim: explore: depth 1: ")
    assert Path(tmp_path).is_dir()


def test_every_invariant_is_named_in_one_list():
    import re

    from klpsim.model.invariants import INVARIANTS

    src = Path(ex.__file__).resolve().parent.parent
    text = "".join(p.read_text() for p in src.rglob("*.py"))
    named = set(re.findall(r'Violation\(\s*"([a-z-]+)"', text))
    assert named == set(INVARIANTS)


COMMITTED = sorted((ROOT / "tests" / "scenarios" / "explore").glob("*/*/*.sh"))


@pytest.mark.parametrize("script", COMMITTED, ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_committed_counterexamples_break_their_invariant(script):
    profile, invariant = script.parts[-3], script.stem
    r = klpsim("run", "--check", "--kernel", profile, str(script))
    assert r.status == 3
    (line,) = [x for x in r.err.splitlines() if x.startswith("klpsim: check:")]
    assert f": {invariant}: " in line


def test_the_recorded_searches_are_this_explorer():
    """explore.json (docs/semantics.md's table) holds measurements; their
    first levels must be what the explorer finds now."""
    import json

    data = json.loads((ROOT / "src" / "klpsim" / "tools" / "data" / "explore.json").read_text())
    largest = [r for r in data["runs"] if r["name"].endswith("-largest")]
    assert {r["profile"] for r in largest} == set(ex.all_profiles())
    targets = [r for r in data["runs"] if r["name"].endswith("-target")]
    assert {r["profile"] for r in targets} == {"replace-set", "7.1"}
    for r in largest + targets:
        b = Bounds(r["profile"], **dict(r["bounds"], ops=tuple(r["bounds"]["ops"]), depth=2))
        result = explore(b)
        assert [lv.new for lv in result.levels] == [lv["new"] for lv in r["per_level"][:3]]
        depth = r["bounds"]["depth"]
        argv = " ".join(b.argv()).replace("--depth 2", f"--depth {depth}")
        assert r["command"].startswith(f"klpsim explore {argv}")


def test_a_model_crash_is_a_finding(monkeypatch, tmp_path):
    from klpsim.livepatch import transition

    def broken(klp):
        raise RuntimeError("forced too hard")

    monkeypatch.setattr(transition, "klp_force_transition", broken)
    b = Bounds("7.1", patches=1, funcs=1, sets=1, states=0, tasks=0, depth=2)
    result = explore(b)
    crash = result.found[ex.CRASH]
    assert [op[0] for op in crash.path] == [ex.LOAD, ex.FORCE]
    assert crash.detail == "RuntimeError: forced too hard"
    script, check = write_counterexample(b, crash, tmp_path)
    assert check == "RuntimeError: forced too hard"
    assert script.read_text().splitlines()[-1] == "echo 1 > /sys/kernel/livepatch/lp1/force"


class Tally:
    """A worker for the pool tests: keeps a running sum."""

    def __init__(self, index, jobs):
        self.index, self.jobs, self.total = index, jobs, 0

    def add(self, n):
        self.total += n
        return (self.index, self.jobs, self.total)

    def fail(self):
        raise ValueError("no")

    def nap(self, n):
        import time

        time.sleep(n / 100)
        return (self.index, n)


@pytest.mark.parametrize("pool_class", ["LocalPool", "ProcessPool"])
def test_worker_pools_keep_state_between_calls(pool_class):
    from klpsim.tools import workers

    pool = getattr(workers, pool_class)(Tally, 3)
    try:
        assert pool.call("add", [(1,), (2,), (3,)]) == [(0, 3, 1), (1, 3, 2), (2, 3, 3)]
        assert pool.call("add", [(10,), (10,), (10,)]) == [(0, 3, 11), (1, 3, 12), (2, 3, 13)]
        if pool_class == "ProcessPool":
            with pytest.raises(workers.WorkerFailed, match="worker 0: ValueError: no"):
                pool.call("fail", [(), (), ()])
    finally:
        pool.close()


@pytest.mark.parametrize("pool_class", ["LocalPool", "ProcessPool"])
def test_worker_pools_feed_each_task_once_to_whoever_is_free(pool_class):
    from klpsim.tools import workers

    pool = getattr(workers, pool_class)(Tally, 2)
    try:
        # one long task, then short ones: the short ones all go to the other worker
        naps = [30, 1, 1, 1, 1, 1]
        done = list(pool.feed("nap", [(n,) for n in naps]))
        assert sorted(i for i, _ in done) == list(range(len(naps)))
        assert all(value[1] == naps[i] for i, value in done)
        if pool_class == "ProcessPool":
            assert done[-1] == (0, (0, 30))  # the long one ends last
            assert {value[0] for i, value in done if i} == {1}
            with pytest.raises(workers.WorkerFailed, match="worker [01]: ValueError: no"):
                list(pool.feed("fail", [(), (), ()]))
    finally:
        pool.close()


def test_explore_without_ray_never_imports_it(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from klpsim.cli import main; "
        "s = main(['explore', '--kernel', '7.1', '--patches', '1', '--funcs', '1', '--sets', '1',"
        " '--states', '0', '--tasks', '0', '--depth', '2', '--jobs', '2', '--quiet',"
        f" '--out', {str(tmp_path)!r}]); "
        "assert 'ray' not in sys.modules, 'ray imported'; sys.exit(s)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "invariants:    all hold" in r.stdout


UNDO = Bounds("replaceable", patches=2, funcs=2, sets=1, states=0, tasks=2, depth=4, module_funcs=1)
"""Every undoing operation at work: workers sleeping and waking, the
writable replaceable attribute, the target module coming and going; some
of them do not give the state back (a search that trusted them would find
1,254 states at depth 4 instead of 1,263)."""


def test_undoing_steps_and_fresh_sessions_change_nothing(monkeypatch):
    """The states, orbits, transitions and findings are those of a search
    that replays after every step that changed the state (no undo: replays
    are what test_symmetry_reduction_loses_no_state compares with the naive
    search), and of one that boots a fresh session every few lines."""

    def run() -> tuple[object, set[bytes]]:
        backend = LocalBackend(UNDO)
        r = explore(UNDO, backend)
        levels = [(lv.new, lv.orbit, lv.broken, lv.transitions) for lv in r.levels]
        found = {k: (f.path, f.detail, f.count) for k, f in r.found.items()}
        return (levels, found, r.exhausted), backend.workers[0].visited

    undoing = set()
    real_undo = Model.undo

    def undo(self: Model, live: ex.Live, op: ex.Op) -> ex.Op | None:
        back = real_undo(self, live, op)
        if back is not None:
            undoing.add(op[0])
        return back

    with monkeypatch.context() as m:
        m.setattr(Model, "undo", undo)
        result = explore(UNDO)
    assert sum(lv.undone for lv in result.levels) > 50  # the undoing steps do run
    assert undoing == {ex.SLEEP_IN, ex.WAKE, ex.ATTR, ex.TGT_IN, ex.TGT_OUT}
    with_undo = run()
    with monkeypatch.context() as m:
        m.setattr(Model, "undo", lambda self, live, op: None)
        assert run() == with_undo
    with monkeypatch.context() as m:
        m.setattr(ex, "MAX_COMMANDS", 8)
        assert run() == with_undo
