"""``klpsim check``: an offline verdict on a set of livepatches.

    klpsim check FILE.ko|FILE.toml... [--kernel PROFILE] [--kallsyms FILE]
                 [--order as-given|any] [--suggest-sets] [--json]
                 [--replace MOD=0|1] [--replace-set MOD=N]

The verdict comes from running the model: each patch is loaded, in order, by
the simulated kernel's module loader on a booted profile (a Session), and
every refusal is the model's own PatchRefused event (livepatch/events.py),
which names the rule, the function or state id, and the other patch. After
each load the tool asks the simulated kernel which code each patched
function now runs (ftrace's redirection, as a call would take it), and
compares it with before the load: a function is ``new``, ``re-patched``,
``reverted`` to the original (a nop of an atomic replace) or ``kept``.

A revert is *silent* when the function belonged to another team's patch:
with replace sets, a team is a set; on a kernel without sets (mainline), a
patch's team is the ``replace_set`` its file declares (TOML or the
``livepatch_replace_set`` modinfo key), or the patch alone when it declares
none. Plain (non-livepatch) modules among the files are loaded first, as
the targets the patches may patch.

Exit status: 0 when every load is accepted with no silent revert, 1
otherwise, 2 on bad input. docs/shipping-livepatches.md documents the
output and the JSON.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from klpsim.artifacts.ko import PlainModule
from klpsim.kernel.errno import errno_name
from klpsim.kernel.module import ModuleSpec
from klpsim.kernel.symbols import Symbol, SymbolSource
from klpsim.livepatch.events import PatchesReplaced, PatchRefused, function_label
from klpsim.livepatch.profiles import Profile, get_profile
from klpsim.model.schema import DefinitionError, LivepatchDef, TargetDef, load_definition
from klpsim.modules.definition import build_module
from klpsim.modules.kofile import KoModuleError, ko_definition, ko_module, read_ko_module
from klpsim.session import Session

__all__ = [
    "CheckError",
    "Patch",
    "Load",
    "LoadRun",
    "load_json",
    "Report",
    "change_lines",
    "refusal",
    "read_inputs",
    "run_order",
    "check",
    "suggest_sets",
]

SETTLE_STEP_NS = 100_000_000
SETTLE_STEPS = 600  # as the selftests' loop_until: 60 simulated seconds


class CheckError(Exception):
    """Bad input: one line naming the file."""


@dataclass
class Patch:
    """One livepatch given to check, as the profile's kernel reads it."""

    file: str
    defn: LivepatchDef
    spec: ModuleSpec

    @property
    def name(self) -> str:
        return self.defn.name

    @cached_property
    def functions(self) -> list[str]:
        """``object:old_name,sympos`` of each func, in patch order."""
        return [f"{o.name}:{f.old_name},{f.old_sympos}" for o in self.defn.objects for f in o.funcs]

    @cached_property
    def function_set(self) -> frozenset[str]:
        return frozenset(self.functions)

    def key(self, label: str) -> str:
        """The first of :attr:`functions` that function_label() shows as
        *label* (events name a function that way)."""
        for o in self.defn.objects:
            objname = None if o.name == "vmlinux" else o.name
            for f in o.funcs:
                if function_label(objname, f.old_name, f.old_sympos) == label:
                    return f"{o.name}:{f.old_name},{f.old_sympos}"
        return label


@dataclass
class Target:
    """A plain module given to check: loaded before the patches."""

    file: str
    name: str
    spec: ModuleSpec


@dataclass
class Load:
    """One load: accepted or refused, and what it changed."""

    patch: str
    accepted: bool
    errno: int = 0
    reason: str | None = None
    rule: str | None = None
    function: str | None = None
    state_id: int | None = None
    other: str | None = None
    replaces: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    """``{"function", "change", "before", "after"}``: before/after name the
    patch whose code runs, None for the original."""
    kept: dict[str, int] = field(default_factory=dict)
    """Functions whose code the load left as it was: {patch: how many}."""
    running: dict[str, str] = field(default_factory=dict)
    """After the load: each patched function and the patch whose code it runs."""
    patches_after: list[str] = field(default_factory=list)
    """/sys/kernel/livepatch after the load."""
    log: list[str] = field(default_factory=list)

    @property
    def silent_reverts(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["change"] == "reverted" and c.get("silent")]

    @property
    def ok(self) -> bool:
        return self.accepted and not self.silent_reverts


@dataclass
class Report:
    profile: str
    patches: list[Patch]
    targets: list[Target]
    loads: list[Load]
    orders: dict[str, Any] | None = None
    suggestion: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        ok = all(load.ok for load in self.loads)
        if self.orders is not None and self.orders.get("smallest_failing"):
            ok = False
        return ok


# -- input -------------------------------------------------------------------------


def read_inputs(
    files: Sequence[str],
    profile: Profile,
    replace: dict[str, bool] | None = None,
    replace_set: dict[str, int] | None = None,
) -> tuple[list[Patch], list[Target]]:
    """Read every file (``.ko`` or ``.toml``); CheckError on the first bad one."""
    replace, replace_set = replace or {}, replace_set or {}
    patches: list[Patch] = []
    targets: list[Target] = []
    seen: dict[str, str] = {}
    for f in files:
        path = Path(f)
        try:
            if path.suffix == ".ko":
                m = read_ko_module(path)
                if isinstance(m, PlainModule):
                    spec = ko_module(path, profile)
                    defn: LivepatchDef | TargetDef | None = None
                else:
                    name = m.name or path.name.removesuffix(".ko").replace("-", "_")
                    defn = ko_definition(m, profile, replace.get(name), replace_set.get(name))
                    spec = build_module(defn, profile)
            elif path.suffix == ".toml":
                d = load_definition(path)
                if isinstance(d, LivepatchDef):
                    if d.name in replace:
                        d = _with(d, replace=replace[d.name])
                    if d.name in replace_set:
                        d = _with(d, replace_set=replace_set[d.name])
                defn = d
                spec = build_module(d, profile)
            else:
                raise CheckError(f"{f}: not a .ko or .toml file")
        except (KoModuleError, DefinitionError) as e:
            raise CheckError(str(e)) from None
        if spec.name in seen:
            raise CheckError(f"{f}: module '{spec.name}' is also {seen[spec.name]}")
        seen[spec.name] = f
        if isinstance(defn, LivepatchDef):
            patches.append(Patch(f, defn, spec))
        else:
            targets.append(Target(f, spec.name, spec))
    for name in (*replace, *replace_set):
        if not any(p.name == name for p in patches):
            raise CheckError(f"--replace/--replace-set {name}: no livepatch of that name is given")
    return patches, targets


def _with(d: LivepatchDef, **changes: Any) -> LivepatchDef:
    return dataclasses.replace(d, **changes)


# -- running the model ---------------------------------------------------------------


class LoadRun:
    """One booted session loading patches one by one."""

    def __init__(
        self,
        profile: Profile,
        patches: Sequence[Patch],
        targets: Sequence[Target],
        symbols: SymbolSource | None,
        session: Session | None = None,
        installed: Sequence[Patch] = (),
    ):
        """*session*: an already booted one (``klpsim plan``: a host
        snapshot's), whose *installed* patches are loaded already."""
        self.session = session or Session(profile, symbols=symbols)
        self.kernel = self.session.kernel
        self.klp = self.session.klp
        everything = [*installed, *patches]
        self.patches = {p.name: p for p in everything}
        self.team = {p.name: _team(p, profile) for p in everything}
        keys = dict.fromkeys(k for p in everything for k in p.functions)
        self.keys = list(keys)
        self._syms: dict[str, Symbol | None] = {}
        self.state: dict[str, str | None] = {}
        """Which patch each patched function runs (see :meth:`running`)."""
        for t in targets:
            ret = self.kernel.modules.load_module(t.spec, [])
            if ret:
                log = self.kernel.log.records[-1].text if self.kernel.log.records else ""
                raise CheckError(
                    f"{t.file}: the plain module does not load ({errno_name(ret)}): {log}"
                )
        self.task = self.kernel.sched.current
        if installed:
            now = self.running([k for p in installed for k in p.functions])
            self.state = {k: v for k, v in now.items() if v is not None}

    def _sym(self, key: str) -> Symbol | None:
        """The function *key* names (None: not loaded or not there); the
        objects do not change once the targets are loaded."""
        if key not in self._syms:
            self._syms[key] = self._find_sym(key)
        return self._syms[key]

    def _find_sym(self, key: str) -> Symbol | None:
        obj, _, rest = key.partition(":")
        name, _, pos = rest.rpartition(",")
        objfile = self.kernel.kallsyms.objects.get(obj)
        if objfile is None:
            return None
        syms = objfile.find(name)
        sympos = int(pos)
        if sympos:
            return syms[sympos - 1] if sympos <= len(syms) else None
        return syms[0] if len(syms) == 1 else None

    def running(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Which patch's code each of *keys* runs now, as a call from the
        shell takes it through ftrace (None: the original; functions not
        loaded are left out)."""
        out: dict[str, str | None] = {}
        for key in keys:
            sym = self._sym(key)
            if sym is None:
                continue
            target, _ = self.kernel.resolve(self.task, sym)
            owner = target.owner.name if target is not None else None
            out[key] = owner if owner in self.patches and target is not sym else None
        return out

    def pending_replaces(self, name: str) -> list[str]:
        """The patches livepatch *name*, still in transition, frees when it
        completes (klp_complete_transition()); [] when it is not in one."""
        tp = self.klp.transition_patch
        if tp is None or tp.name != name:
            return []
        return [old.name for old in self.klp.patches
                if old is not tp and self.klp.policy.replaces(tp, old)]  # fmt: skip

    def settle(self) -> None:
        """Let time pass until the transition is over (as load_lp waits),
        then run the work it queued (freeing the replaced patches)."""
        clock = self.kernel.clock
        for _ in range(SETTLE_STEPS):
            if self.klp.transition_patch is None:
                break
            clock.advance(SETTLE_STEP_NS)
        clock.advance(1_000_000)

    def load(self, patch: Patch, started: Callable[[], None] | None = None) -> Load:
        """Load *patch* and wait for its transition; *started* runs between
        the load and the wait (``plan`` looks at the transition there)."""
        # A function's code changes only when a patch of it is enabled,
        # replaced or removed: ask the kernel about those functions.
        installed = {p.name for p in self.klp.patches}
        records = self.kernel.log.records
        log_start = len(records)
        with self.session.system.events.capture() as events:
            ret = self.kernel.modules.load_module(patch.spec, [])
            if started is not None:
                started()
            self.settle()
        load = Load(patch.name, accepted=ret == 0, errno=ret)
        for e in events:
            if isinstance(e, PatchRefused) and e.patch == patch.name:
                load.reason, load.rule, load.function, load.state_id, load.other = _why(e, patch)
            elif isinstance(e, PatchesReplaced) and e.patch == patch.name:
                load.replaces = list(e.replaced)
        load.log = [line for r in records[log_start:] for line in r.text.split("\n")]
        load.patches_after = [p.name for p in self.klp.patches]
        if load.accepted:
            replaced = installed - set(load.patches_after)
            # A replace still in transition (stalled) keeps the patches it
            # replaces, but its nops already run for every switched task,
            # the shell and what it forks included.
            replaced.update(self.pending_replaces(patch.name))
            dirty = dict.fromkeys(patch.functions)
            for name in replaced:
                dirty.update(dict.fromkeys(self.patches[name].functions))
            before = {k: self.state.get(k) for k in dirty}
            after = self.running(list(dirty))
            load.changes = self._changes(patch, before, after)
            self.state.update(after)
            for k, v in list(self.state.items()):
                if v is not None and v not in load.patches_after:
                    del self.state[k]  # stale: its patch left without this load's replace
            load.kept = Counter(
                v for k, v in self.state.items() if v is not None and k not in dirty
            )
        load.running = {k: v for k, v in self.state.items() if v is not None}
        return load

    def _changes(
        self, patch: Patch, before: dict[str, str | None], after: dict[str, str | None]
    ) -> list[dict[str, Any]]:
        mine = set(patch.functions)
        out: list[dict[str, Any]] = []
        for key, now in after.items():
            was = before.get(key)
            if key in mine:
                change = "new" if was is None else "re-patched"
            elif was is not None and now is None:
                change = "reverted"
            elif was is not None and now == was:
                change = "kept"
            elif was is not None and now is not None:
                change = "fell-back"  # to an older patch the replace left in place
            else:
                continue
            c: dict[str, Any] = {"function": key, "change": change, "before": was, "after": now}
            if change == "reverted" and was is not None:
                c["silent"] = self.team[was] != self.team[patch.name]
            out.append(c)
        return out


def _why(
    e: PatchRefused, patch: Patch
) -> tuple[str, str | None, str | None, int | None, str | None]:
    """What the model's refusal event says: (reason, rule, function, state
    id, other patch). The one place check reads the event's fields: the rule
    is the kind of its Conflict or of its Unresolved symbol, the function is
    named as *patch* names it (``object:old_name,sympos``)."""
    reason = e.reason.value
    u = e.unresolved
    if u is not None:
        return reason, u.kind.value, f"{u.objname or 'vmlinux'}:{u.name},{u.sympos}", None, None
    c = e.conflict
    if c is None or c.kind is None:  # no rule: another patch in transition, or no detail
        return reason, None, None, None, None
    function = patch.key(c.function) if c.function is not None else None
    return reason, c.kind.value, function, c.state_id, c.other


def _team(p: Patch, profile: Profile) -> str:
    """What a silent revert crosses: the set, or on mainline the declared set."""
    if "replace_set" in profile.patch_fields or p.defn.replace_set:
        return f"set {p.defn.replace_set}"
    return f"patch {p.name}"


def run_order(
    profile: Profile,
    patches: Sequence[Patch],
    targets: Sequence[Target],
    symbols: SymbolSource | None = None,
    stop_at_failure: bool = False,
) -> list[Load]:
    """Load *patches* in order on a fresh boot of *profile*."""
    run = LoadRun(profile, patches, targets, symbols)
    loads: list[Load] = []
    for p in patches:
        load = run.load(p)
        loads.append(load)
        if stop_at_failure and not load.ok:
            break
    return loads


def search_orders(
    profile: Profile,
    patches: Sequence[Patch],
    targets: Sequence[Target],
    symbols: SymbolSource | None,
    budget: int = 5_000,
) -> dict[str, Any]:
    """``--order any``: the shortest load sequences first (breadth first,
    extending only sequences whose loads all succeed), up to *budget* loads.

    The first failing sequence found is a smallest order that fails. Whether
    the verdict depends on the order: some full order fails and another
    succeeds.
    """
    n = len(patches)
    frontier: list[tuple[int, ...]] = [()]
    loads_run = 0
    smallest: tuple[int, ...] | None = None
    failing: Load | None = None
    full_ok: tuple[int, ...] | None = None
    exhaustive = True
    searched = 0  # every sequence of up to this many patches was run
    for length in range(1, n + 1):
        nxt: list[tuple[int, ...]] = []
        for prefix in frontier:
            for i in range(n):
                if i in prefix:
                    continue
                seq = (*prefix, i)
                if loads_run + len(seq) > budget:
                    exhaustive = False
                    break
                loads_run += len(seq)
                got = run_order(profile, [patches[j] for j in seq], targets, symbols, True)
                if got[-1].ok and len(got) == len(seq):
                    nxt.append(seq)
                    if length == n and full_ok is None:
                        full_ok = seq
                elif smallest is None:
                    smallest, failing = seq, got[-1]
            if not exhaustive:
                break
        if not exhaustive:
            break
        searched = length
        if smallest is not None:
            break
        frontier = nxt
    if smallest is not None and full_ok is None and exhaustive:
        full_ok = _find_full_ok(profile, patches, targets, symbols, budget - loads_run)
    depends: bool | None
    if smallest is None:
        depends = False if exhaustive else None
    else:
        depends = True if full_ok is not None else (False if exhaustive else None)
    return {
        "exhaustive": exhaustive,
        "searched_up_to": searched,
        "loads_run": loads_run,
        "depends_on_order": depends,
        "smallest_failing": [patches[i].name for i in smallest] if smallest else None,
        "failing_load": load_json(failing) if failing else None,
        "an_order_that_succeeds": [patches[i].name for i in full_ok] if full_ok else None,
    }


def _find_full_ok(profile, patches, targets, symbols, budget: int) -> tuple[int, ...] | None:
    """A full order with no failure, searched depth first within *budget* loads."""
    n = len(patches)
    spent = 0
    for perm in itertools.permutations(range(n)):
        spent += n
        if spent > budget:
            return None
        got = run_order(profile, [patches[i] for i in perm], targets, symbols, True)
        if len(got) == n and got[-1].ok:
            return perm
    return None


# -- replace sets ------------------------------------------------------------------


def suggest_sets(patches: Sequence[Patch], profile: Profile) -> dict[str, Any]:
    """A replace_set per patch so that no two sets share a function or a
    state id: the sets are the connected components of the share graph.

    Patches declaring the same non-zero set are tied too (they were meant to
    replace each other). A component keeps the set most of its patches
    declare (the lowest on a tie); components without one get fresh numbers.
    """
    n = len(patches)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    merges: list[dict[str, Any]] = []

    def tie(a: int, b: int, because: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            merges.append({"patches": [patches[a].name, patches[b].name], "because": because})

    def same_func(key: str) -> str:
        # klp_find_func(): sympos 0 and 1 match on kernels with 139560e8b973
        obj_name, _, pos = key.rpartition(",")
        return f"{obj_name},1" if profile.sympos_0_eq_1 and pos == "0" else key

    first: dict[str, int] = {}
    for i, p in enumerate(patches):
        for key in p.functions:
            k = same_func(key)
            if k in first:
                tie(first[k], i, f"function {key}")
            else:
                first[k] = i
        for st in p.defn.states:
            k = f"state:{st.id}"
            if k in first:
                tie(first[k], i, f"state id {st.id}")
            else:
                first[k] = i
        if p.defn.replace_set:
            k = f"set:{p.defn.replace_set}"
            if k in first:
                tie(first[k], i, f"both declare replace_set {p.defn.replace_set}")
            else:
                first[k] = i
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    taken: set[int] = set()
    chosen: dict[int, int] = {}
    for root, members in comps.items():
        given = [patches[i].defn.replace_set for i in members if patches[i].defn.replace_set]
        if given:
            best = min(set(given), key=lambda s: (-given.count(s), s))
            if best not in taken:
                chosen[root] = best
                taken.add(best)
    fresh = itertools.count(1)
    for root in comps:
        if root not in chosen:
            s = next(fresh)
            while s in taken:
                s = next(fresh)
            chosen[root] = s
            taken.add(s)
    return {
        "sets": [
            {
                "patch": p.name,
                "replace_set": chosen[find(i)],
                "given": p.defn.replace_set,
            }
            for i, p in enumerate(patches)
        ],
        "merges": merges,
    }


# -- the whole check ---------------------------------------------------------------


def check(
    profile: Profile,
    patches: list[Patch],
    targets: list[Target],
    symbols: SymbolSource | None = None,
    any_order: bool = False,
    suggest: bool = False,
) -> Report:
    loads = run_order(profile, patches, targets, symbols)
    report = Report(profile.name, patches, targets, loads)
    if any_order:
        report.orders = search_orders(profile, patches, targets, symbols)
    if suggest:
        s = suggest_sets(patches, profile)
        sets = {e["patch"]: e["replace_set"] for e in s["sets"]}
        # the proof: the same loads, with the suggested sets, on the replace-set kernel
        rs = get_profile("replace-set")
        again = []
        for p in patches:
            d = _with(p.defn, replace_set=sets[p.name])
            again.append(Patch(p.file, d, build_module(d, rs)))
        retry = run_order(rs, again, targets, symbols)  # a plain module is the same on any
        s["verified_on"] = rs.name
        s["all_accepted"] = all(load.accepted for load in retry)
        s["refused"] = [load_json(load) for load in retry if not load.accepted]
        report.suggestion = s
    return report


# -- output ------------------------------------------------------------------------


def load_json(load: Load) -> dict[str, Any]:
    return {
        "patch": load.patch,
        "accepted": load.accepted,
        "errno": load.errno,
        "error": f"-{errno_name(load.errno)}" if load.errno < 0 else None,
        "reason": load.reason,
        "rule": load.rule,
        "function": load.function,
        "state_id": load.state_id,
        "other": load.other,
        "replaces": load.replaces,
        "functions": load.changes,
        "kept": load.kept,
        "silent_reverts": [c["function"] for c in load.silent_reverts],
        "patches_after": load.patches_after,
        "log": load.log,
    }


def to_json(report: Report) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for p in report.patches for k in p.functions))
    return {
        "kernel": report.profile,
        "ok": report.ok,
        "patches": [
            {
                "file": p.file,
                "name": p.name,
                "replace": p.defn.replace,
                "replace_set": p.defn.replace_set,
                "functions": p.functions,
                "states": [{"id": s.id, "version": s.version} for s in p.defn.states],
            }
            for p in report.patches
        ],
        "targets": [{"file": t.file, "name": t.name} for t in report.targets],
        "matrix": [
            {"function": k, "patches": [p.name for p in report.patches if k in p.function_set]}
            for k in keys
        ],
        "loads": [load_json(load) for load in report.loads],
        "orders": report.orders,
        "suggested_sets": report.suggestion,
    }


RULE_TEXT = {
    "set-function": "a function that a patch of another replace set patches",
    "set-state": "a state id that a patch of another replace set uses",
    "state-downgrade": "a lower version of a state the patch must keep",
    "state-missing": "a replacing patch without a state of the patch it replaces",
    "symbol-not-found": "a function the kernel does not have",
    "symbol-ambiguous": "a name with several symbols and old_sympos 0",
    "sympos-not-found": "an old_sympos beyond the symbols of that name",
}


def refusal(load: Load, report: Report) -> str:
    """One line: why *load* was refused (rule, function or state id, the other patch)."""
    err = f"-{errno_name(load.errno)}" if load.errno < 0 else str(load.errno)
    text = f"REFUSED ({err})"
    if load.rule is None:
        why = load.reason or "the module did not load"
        last = next((ln for ln in reversed(load.log) if ln), "")
        return f"{text}: {why}" + (f": {last}" if last else "")
    what = load.function or (f"state id {load.state_id}" if load.state_id is not None else "")
    text += f": {load.rule}: {RULE_TEXT.get(load.rule, load.rule)}"
    if what:
        text += f": {what}"
    if load.other:
        other = next((p for p in report.patches if p.name == load.other), None)
        sets = (
            f" (replace_set {other.defn.replace_set}, this one {_set_of(report, load.patch)})"
            if other is not None and "replace_set" in _fields(report)
            else ""
        )
        text += f", in {load.other}{sets}"
    return text


def _fields(report: Report) -> tuple[str, ...]:
    return get_profile(report.profile).patch_fields


def _set_of(report: Report, name: str) -> int:
    return next(p.defn.replace_set for p in report.patches if p.name == name)


def change_lines(load: Load) -> list[str]:
    """What an accepted load did to each function, one line each (indented)."""
    out: list[str] = []
    for c in load.changes:
        line = f"    {c['change']:10} {c['function']}"
        if c["change"] == "re-patched":
            line += f" (was {c['before']})"
        elif c["change"] == "reverted":
            line += f" to the original (was {c['before']})"
            if c["silent"]:
                line += ": SILENT REVERT of another team's function"
        elif c["change"] in ("kept", "fell-back"):
            line += f" (was {c['before']}, now {c['after']})"
        out.append(line)
    if load.kept:
        kept = ", ".join(f"{n} of {p}" for p, n in load.kept.items())
        out.append(f"    kept       {sum(load.kept.values())} function(s): {kept}")
    return out


def render(report: Report) -> str:
    """The human view."""
    out: list[str] = []
    patches = report.patches
    fields = _fields(report)
    out.append(f"kernel {report.profile}: {len(patches)} livepatch(es)")
    for p in patches:
        settings = [f"{f} {int(getattr(p.defn, f))}" for f in fields if f != "replaceable"]
        states = ", ".join(f"{s.id} v{s.version}" for s in p.defn.states) or "none"
        out.append(f"  {p.name:24} {p.file}  ({', '.join(settings)}; states: {states})")
    for t in report.targets:
        out.append(f"  {t.name:24} {t.file}  (plain module, loaded first)")
    out.append("")
    keys = list(dict.fromkeys(k for p in patches for k in p.functions))
    if keys:
        cols = [str(i + 1) for i in range(len(patches))]
        width = max(len(k) for k in keys)
        out.append("functions".ljust(width) + "  " + " ".join(c.rjust(2) for c in cols))
        for k in keys:
            cells = ["X" if k in p.function_set else "." for p in patches]
            out.append(k.ljust(width) + "  " + " ".join(c.rjust(2) for c in cells))
        out.append("  (columns: the patches in the order above)")
        out.append("")
    for i, load in enumerate(report.loads, 1):
        if not load.accepted:
            out.append(f"load {i}: {load.patch}: {refusal(load, report)}")
            continue
        rep = f", replaces {', '.join(load.replaces)}" if load.replaces else ""
        out.append(f"load {i}: {load.patch}: accepted{rep}")
        out += change_lines(load)
    if report.orders is not None:
        o = report.orders
        out.append("")
        scope = (
            "every order"
            if o["exhaustive"]
            else f"every order of up to {o['searched_up_to']} patches, then a budget of "
            f"{o['loads_run']} loads ran out"
        )
        if o["smallest_failing"]:
            fl = o["failing_load"]
            out.append(
                f"orders ({scope}): smallest failing order: {', '.join(o['smallest_failing'])}"
            )
            why = fl["rule"] or fl["reason"] or ("silent revert" if fl["accepted"] else "refused")
            out.append(f"  its last load fails: {fl['patch']}: {why}")
            dep = {True: "yes", False: "no", None: "unknown"}[o["depends_on_order"]]
            out.append(f"  verdict depends on the order: {dep}")
            if o["an_order_that_succeeds"]:
                out.append(f"  an order that succeeds: {', '.join(o['an_order_that_succeeds'])}")
        else:
            out.append(f"orders ({scope}): no order fails")
    if report.suggestion is not None:
        s = report.suggestion
        out.append("")
        out.append("suggested replace sets (no two sets share a function or a state id):")
        for e in s["sets"]:
            given = f" (given {e['given']})" if e["given"] else ""
            out.append(f"  {e['patch']:24} replace_set {e['replace_set']}{given}")
        for m in s["merges"]:
            out.append(f"  same set: {m['patches'][0]} and {m['patches'][1]}: {m['because']}")
        verdict = "every load accepted" if s["all_accepted"] else "refused:"
        out.append(f"  checked on {s['verified_on']} in the given order: {verdict}")
        for r in s["refused"]:
            what = r["function"] or (f"state id {r['state_id']}" if r["state_id"] else "")
            out.append(
                f"    {r['patch']}: {r['rule'] or r['reason']}: {what}, in {r['other']}"
                " (a set is one cumulative line: a newer patch must keep its states)"
                if r["other"]
                else f"    {r['patch']}: {r['rule'] or r['reason']}: {what}"
            )
    out.append("")
    refused = sum(not load.accepted for load in report.loads)
    silent = sum(len(load.silent_reverts) for load in report.loads)
    out.append(
        f"verdict: {'OK' if report.ok else 'FAIL'}: {len(report.loads) - refused} of "
        f"{len(report.loads)} loads accepted, {silent} silent revert(s)"
    )
    return "\n".join(out) + "\n"


# -- the command -------------------------------------------------------------------


def _pairs(items: list[str], what: str, parse) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, eq, value = item.partition("=")
        v = parse(value) if eq and name else None
        if v is None:
            raise CheckError(f"{what} {item}: expected MODULE=VALUE")
        out[name.replace("-", "_")] = v
    return out


def _bool01(v: str) -> bool | None:
    return {"0": False, "1": True}.get(v)


def _u32(v: str) -> int | None:
    return int(v) if v.isdigit() and int(v) < 2**32 else None


def run_check(args: Any) -> int:
    import json
    import sys

    from klpsim.kernel.printk import escape
    from klpsim.livepatch.profiles import all_profiles

    def bad(msg: str) -> int:
        print(f"klpsim: {escape(msg)}", file=sys.stderr)
        return 2

    profiles = all_profiles()
    if args.kernel not in profiles:
        return bad(f"unknown kernel profile '{args.kernel}' (see 'klpsim kernels')")
    profile = profiles[args.kernel]
    symbols = None
    try:
        if args.kallsyms is not None:
            from klpsim.artifacts.kallsyms import KallsymsError, read_symbol_table

            try:
                symbols = read_symbol_table(args.kallsyms)
            except KallsymsError as e:
                raise CheckError(f"--kallsyms {e}") from None
        replace = _pairs(args.replace, "--replace", _bool01)
        replace_set = _pairs(args.replace_set, "--replace-set", _u32)
        patches, targets = read_inputs(args.files, profile, replace, replace_set)
    except CheckError as e:
        return bad(str(e))
    if not patches:
        return bad(f"{args.files[0]}: no livepatch among the files")
    try:
        report = check(profile, patches, targets, symbols, args.order == "any", args.suggest_sets)
    except CheckError as e:
        return bad(str(e))
    if args.json:
        sys.stdout.write(json.dumps(to_json(report), indent=2) + "\n")
    else:
        sys.stdout.write(render(report))
    return 0 if report.ok else 1
