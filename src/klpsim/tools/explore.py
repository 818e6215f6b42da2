"""``klpsim explore``: a bounded, exhaustive breadth-first search of the model.

The search drives the model ``klpsim run`` runs: every state is a booted
:class:`~klpsim.session.Session`, every step one script line run through it
with the invariants checked around it, as ``klpsim run --check`` does, so
that what it finds is a script that reproduces it. docs/explore.md
describes the family of patches, the operations, the state and the
symmetry; docs/scale.md how the search is spread over processes and Ray.

The pieces:

* :class:`Bounds` and :func:`family`: what is explored;
* :class:`Model`: the operations a state offers, running one, and the
  canonical state (:meth:`Model.key`);
* :class:`Worker`: one partition of the states (by the hash of the
  canonical state) and the expansion of its frontier;
* :func:`explore`: the search, level by level, over a backend that runs
  the workers (in this process, in local processes, or on Ray);
* :func:`write_counterexample`: a found violation as a scenario.
"""

from __future__ import annotations

import gc
import itertools
import marshal
import signal
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import factorial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from klpsim.kernel.vmlinux import PROC_SHOW
from klpsim.livepatch.profiles import all_profiles, get_profile
from klpsim.modules.resolver import ModuleResolver
from klpsim.scenario.parser import Command, parse_script
from klpsim.session import CheckFailed, Session

if TYPE_CHECKING:
    from klpsim.kernel.module import ModuleSpec
    from klpsim.kernel.symbols import Symbol
    from klpsim.model.invariants import Violation

__all__ = [
    "Bounds",
    "BoundsError",
    "LIMITS",
    "check_bounds",
    "PatchDef",
    "family",
    "Model",
    "Live",
    "Worker",
    "Backend",
    "LocalBackend",
    "Result",
    "explore",
    "write_counterexample",
]

TARGET = "tgt"
"""The target module: the last J of the K functions are its functions."""
VERSIONS = (1, 2)
"""The versions a state of a family patch may have: enough for an upgrade
and a downgrade."""
WORKER_COMM = "worker"
FIRST_PID = 1001
"""spawn_task's first pid: the workers are 1001, 1002, ..."""


MAX_COMMANDS = 240
"""Lines a session runs before the explorer boots a fresh one: every line
takes 1 ms of simulated time, and a retry queued by round_jiffies_relative()
lands on the next whole second only while the milliseconds stay below 250
(docs/explore.md, Time)."""

CRASH = "model-crash"
"""What the explorer reports when the model raised (klpsim run exits 70 there)."""


class BoundsError(ValueError):
    """Bounds the explorer cannot use: one line naming the option."""


@dataclass(frozen=True)
class Bounds:
    """What one exploration covers."""

    profile: str
    patches: int
    """N: the patches of the family, lp1..lpN (:func:`family`); with
    *every*, the most livepatch modules loaded at the same time."""
    funcs: int
    """K: the functions the patches may patch."""
    sets: int
    """S: replace sets 0..S-1 (tags 1..S on replace-tag)."""
    states: int
    """T: state ids 1..T (0: no states)."""
    tasks: int
    """M: worker tasks, each of which may sleep in one of the functions."""
    depth: int
    """D: operations from boot."""
    module_funcs: int = 1
    """J: how many of the K functions are the target module's (the last J)."""
    symmetry: bool = True
    """Reduce by symmetry (off: the naive search the tests compare with)."""
    ops: tuple[str, ...] = ()
    """The kinds of operation (OP_KINDS) to try; () means all of them."""
    every: bool = False
    """Each load may be any definition the bounds allow (:func:`every_definition`),
    instead of the N patches of :func:`family`."""

    def kinds(self) -> frozenset[int]:
        return frozenset(k for g in (self.ops or OP_KINDS) for k in OP_KINDS[g])

    def label(self) -> str:
        where = f" ({self.module_funcs} in a module)" if self.module_funcs else ""
        any_ = " (any definition)" if self.every else ""
        return (
            f"{self.patches} patches{any_} x {self.funcs} functions{where} x {self.sets} sets"
            f" x {self.states} state ids x {self.tasks} tasks x depth {self.depth}"
        )

    def argv(self) -> list[str]:
        """The ``klpsim explore`` options that give these bounds."""
        out = [
            f"--kernel {self.profile}",
            f"--patches {self.patches}",
            f"--funcs {self.funcs}",
            f"--sets {self.sets}",
            f"--states {self.states}",
            f"--tasks {self.tasks}",
            f"--depth {self.depth}",
        ]
        if self.module_funcs != default_module_funcs(self.funcs):
            out.append(f"--module-funcs {self.module_funcs}")
        if self.ops:
            out.append(f"--ops {','.join(self.ops)}")
        if self.every:
            out.append("--family every")
        return out


def default_module_funcs(funcs: int) -> int:
    """One target-module function when there are at least two functions."""
    return 1 if funcs >= 2 else 0


LIMITS = {
    "patches": (1, 6, 9),
    "funcs": (1, 4, len(PROC_SHOW) + 4),
    "sets": (1, 3, 8),
    "states": (0, 2, 3),
    "tasks": (0, 3, 6),
    "depth": (1, 16, 200),
    "module_funcs": (0, 2, 4),
}
"""option: (least, most without --yes, most at all). The depth cap keeps the
clock out of the state: every command takes 1 ms of simulated time, and a
retry stays on a whole second (round_jiffies_relative()) for the first 250."""


def check_bounds(b: Bounds, yes: bool) -> None:
    """BoundsError for a bound out of range, naming the option."""
    if b.profile not in all_profiles():
        raise BoundsError(f"--kernel {b.profile}: unknown profile (see 'klpsim kernels')")
    if b.module_funcs > b.funcs:
        raise BoundsError(f"--module-funcs {b.module_funcs}: more than --funcs {b.funcs}")
    for name, (low, usual, most) in LIMITS.items():
        value = getattr(b, name)
        flag = "--" + name.replace("_", "-")
        if value < low:
            raise BoundsError(f"{flag} {value}: must be at least {low}")
        if value > most:
            raise BoundsError(f"{flag} {value}: at most {most}")
        if value > usual and not yes:
            raise BoundsError(f"{flag} {value}: above {usual} a search may run for days; --yes")
    unknown = [o for o in b.ops if o not in OP_KINDS]
    if unknown:
        raise BoundsError(f"--ops {unknown[0]}: not one of {', '.join(OP_KINDS)}")
    if b.funcs - b.module_funcs > len(PROC_SHOW):
        raise BoundsError(
            f"--funcs {b.funcs}: at most {len(PROC_SHOW)} vmlinux functions (the /proc show ones)"
        )


# -- the functions and the family ------------------------------------------------


def function_names(b: Bounds) -> tuple[str, ...]:
    """The K functions: vmlinux ones first, then the target module's."""
    vmlinux = list(PROC_SHOW)[: b.funcs - b.module_funcs]
    module = [f"{TARGET}_func{i + 1}" for i in range(b.module_funcs)]
    return tuple(vmlinux + module)


@dataclass(frozen=True, order=True)
class PatchDef:
    """One member of the patch family."""

    funcs: tuple[int, ...]
    """Indices into the K functions, ascending."""
    replace: int
    """0/1 (mainline's bool), a tag 0..S on replace-tag, 0 where the kernel has no replace."""
    replace_set: int
    replaceable: bool
    states: tuple[tuple[int, int], ...]
    """(id, version), ids ascending."""

    def toml(self, names: Sequence[str], vmlinux: int) -> str:
        """The module definition (model/schema.py); a replace tag goes in as
        a module parameter (:meth:`params`)."""
        lines = [
            "livepatch = true",
            f"replace = {'true' if self.replace == 1 else 'false'}",
            f"replace_set = {self.replace_set}",
            f"replaceable = {'true' if self.replaceable else 'false'}",
        ]
        for objname, funcs in (
            ("vmlinux", [f for f in self.funcs if f < vmlinux]),
            (TARGET, [f for f in self.funcs if f >= vmlinux]),
        ):
            if funcs:
                lines += [f'[[objects]]\nname = "{objname}"', "funcs = ["]
                lines += [f'  {{ old_name = "{names[f]}" }},' for f in funcs]
                lines.append("]")
        for sid, version in self.states:
            lines.append(f"[[states]]\nid = {sid}\nversion = {version}")
        return "\n".join(lines) + "\n"

    def renamed(self, perm: Perm) -> PatchDef:
        """This definition with the names of *perm* (functions, sets, tags, state ids)."""
        fperm, sperm, rperm, iperm = perm
        return PatchDef(
            tuple(sorted(fperm[f] for f in self.funcs)),
            rperm[self.replace],
            sperm[self.replace_set],
            self.replaceable,
            tuple(sorted((iperm[i], v) for i, v in self.states)),
        )

    def encoding(self) -> tuple[object, ...]:
        """The definition as nested tuples of ints (the state's encoding)."""
        return (self.funcs, self.replace, self.replace_set, int(self.replaceable), self.states)

    def params(self, tag: bool) -> str:
        """insmod's arguments: a replace tag above 1."""
        return f" replace={self.replace}" if tag and self.replace > 1 else ""


def family(b: Bounds) -> tuple[PatchDef, ...]:
    """The definitions a load may choose from, in a fixed order: the N
    patches of :func:`chain`, or with ``--family every`` every definition."""
    return every_definition(b) if b.every else chain(b)


def chain(b: Bounds) -> tuple[PatchDef, ...]:
    """N patches, lp1..lpN, that stack, replace and collide: a chain of
    overlapping function windows ({f1}, {f1,f2}, {f2},
    {f2,f3}, ...: each patch shares a function with its neighbours), two
    neighbours to a set (so neighbours across a set boundary collide),
    every second patch replaceable and carrying a state (ids in turn,
    versions alternating), every third one cumulative (``replace``, keeping
    every state of the patches before it at its highest version, as the
    kernel asks of a cumulative patch; on replace-tag, every second one
    carries its set's tag instead). With N=3 and K=2 this is Petr's
    funcA/funcB case (lp1 {A}, replaceable lp2 {A,B}, replacing lp3 {B}).
    The windows cover the first N//2 + 1 functions, and no patch has more
    than two."""
    profile = get_profile(b.profile)
    fields, tag = profile.patch_fields, profile.policy.replace_is_tag
    out: list[PatchDef] = []
    for i in range(b.patches):
        window, odd = i // 2, i % 2 == 1
        funcs = {window % b.funcs, (window + i % 2) % b.funcs}
        group = window % b.sets
        replace = 0
        if "replace" in fields:
            replace = (group + 1 if odd else 0) if tag else int(i % 3 == 2)
        versions: dict[int, int] = {}
        if odd and b.states:
            versions[window % b.states + 1] = VERSIONS[window // b.states % len(VERSIONS)]
        if replace and not tag:
            for sid, version in (st for d in out for st in d.states):
                versions[sid] = max(version, versions.get(sid, 0))
        states = tuple(sorted(versions.items()))
        out.append(
            PatchDef(
                funcs=tuple(sorted(funcs)),
                replace=replace,
                replace_set=group if "replace_set" in fields else 0,
                replaceable=odd and "replaceable" in fields,
                states=states,
            )
        )
    return tuple(out)


def every_definition(b: Bounds) -> tuple[PatchDef, ...]:
    """Every patch the bounds allow, in a fixed order (``--family every``,
    and the fleet benchmark's patches)."""
    profile = get_profile(b.profile)
    fields = profile.patch_fields
    if "replace" not in fields:
        replaces: Iterable[int] = (0,)
    elif profile.policy.replace_is_tag:
        replaces = range(b.sets + 1)
    else:
        replaces = (0, 1)
    sets: Iterable[int] = range(b.sets) if "replace_set" in fields else (0,)
    replaceable = (False, True) if "replaceable" in fields else (False,)
    states: list[tuple[tuple[int, int], ...]] = [()]
    for n in range(1, b.states + 1):
        for ids in itertools.combinations(range(1, b.states + 1), n):
            for versions in itertools.product(VERSIONS, repeat=n):
                states.append(tuple(zip(ids, versions, strict=True)))
    subsets = [s for n in range(1, b.funcs + 1) for s in itertools.combinations(range(b.funcs), n)]
    return tuple(
        PatchDef(f, r, s, rp, st)
        for f in subsets
        for r in replaces
        for s in sets
        for rp in replaceable
        for st in states
    )


Encoding = tuple[Any, ...]
"""A state as nested tuples of ints (marshal turns it into the key)."""
Perm = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]
"""One symmetry: new names of (functions, replace_set values, replace values, state ids)."""


def _group_perms(groups: Sequence[Sequence[int]], size: int) -> list[tuple[int, ...]]:
    """Every renaming of 0..size-1 that permutes each group within itself."""
    out = []
    for images in itertools.product(*(itertools.permutations(g) for g in groups)):
        perm = list(range(size))
        for g, image in zip(groups, images, strict=True):
            for a, b in zip(g, image, strict=True):
                perm[a] = b
        out.append(tuple(perm))
    return out


def symmetries(b: Bounds) -> tuple[Perm, ...]:
    """The symmetry group: vmlinux functions among themselves, the target
    module's among themselves, the set (or tag) values the profile's policy
    tells apart only by equality, and the state ids; of those renamings,
    the ones that map the family onto itself (all of them for ``--family
    every``: a load may choose any definition either way). The identity first."""
    v = b.funcs - b.module_funcs
    policy = get_profile(b.profile).policy
    nsets, nreplace = b.sets, b.sets + 1
    if not b.symmetry:
        return ((tuple(range(b.funcs)), tuple(range(nsets)), tuple(range(nreplace)),
                 tuple(range(b.states + 1))),)  # fmt: skip
    funcs = _group_perms([range(v), range(v, b.funcs)], b.funcs)
    sets = _group_perms(policy.interchangeable("replace_set", range(nsets)), nsets)
    replaces = _group_perms(policy.interchangeable("replace", range(nreplace)), nreplace)
    # state ids are looked up by id only (klp_get_state()); index 0 is unused
    ids = [(0, *(i + 1 for i in p)) for p in itertools.permutations(range(b.states))]
    identity = (funcs[0], sets[0], replaces[0], ids[0])
    members = sorted(family(b))  # as a multiset: two patches may be alike
    rest = [
        p
        for p in itertools.product(funcs, sets, replaces, ids)
        if p != identity and sorted(d.renamed(p) for d in members) == members
    ]
    return (identity, *rest)


# -- operations ------------------------------------------------------------------

Op = tuple[int, ...]
"""An operation: (kind, arguments...), ints only, so that paths compare and
hash the same in every process."""
Path_ = tuple[Op, ...]

LOAD, DISABLE, ENABLE, FORCE, ATTR, UNLOAD, SLEEP_IN, WAKE, TICK, TGT_IN, TGT_OUT = range(11)

OP_KINDS = {
    "load": (LOAD,),
    "disable": (DISABLE, ENABLE),
    "force": (FORCE,),
    "attr": (ATTR,),
    "unload": (UNLOAD,),
    "task": (SLEEP_IN, WAKE),
    "tick": (TICK,),
    "module": (TGT_IN, TGT_OUT),
}
"""``--ops`` names for the kinds of operation: a load; a write to ``enabled``
(disable, or reverse a transition); to ``force``; to another writable patch
attribute (``replaceable``); rmmod of a patch module; a worker sleeping in a
function or leaving it; a retry tick; the target module coming or going."""


class Live:
    """A booted session in some state, and what the explorer knows of it."""

    __slots__ = ("session", "serial", "defs", "vmlinux_syms", "commands")

    def __init__(self, session: Session, vmlinux_syms: dict[Symbol, int]):
        self.session = session
        self.commands = 0
        """Lines run since boot (MAX_COMMANDS)."""
        self.serial = 0
        """``--family every``: patch modules loaded so far (refused loads do
        not count): the next one is lp<serial+1>."""
        self.defs: dict[str, int] = {}
        """Module name -> family index, for every patch module loaded so far."""
        self.vmlinux_syms = vmlinux_syms


class Model:
    """The explorer's view of the model for one bound: the family, the
    operations, running them, and the canonical state. One per process."""

    def __init__(self, b: Bounds):
        self.b = b
        self.profile = get_profile(b.profile)
        self.names = function_names(b)
        self.vmlinux = b.funcs - b.module_funcs
        self.family = family(b)
        self.perms = symmetries(b)
        self.tag = self.profile.policy.replace_is_tag
        extra = self.profile.extra_patch_attrs
        self.writable = tuple(
            a for a in self.profile.patch_attrs if a in extra and extra[a][2] is not None
        )
        """Writable patch attributes beyond enabled and force (replaceable)."""
        self.tomls = [d.toml(self.names, self.vmlinux) for d in self.family]
        self.target_toml = "functions = [" + ", ".join(f'"{n}"' for n in self.names[self.vmlinux :])
        self.target_toml += "]\n"
        self._specs: dict[tuple[str, int], ModuleSpec] = {}
        self._commands: dict[str, list[Command]] = {}
        self._new_func = {f"livepatch_{n}": i for i, n in enumerate(self.names)}
        self._old_func = {n: i for i, n in enumerate(self.names)}
        self._pids = range(FIRST_PID, FIRST_PID + b.tasks)
        self.kinds = b.kinds()
        self._canonical: dict[bytes, tuple[bytes, int]] = {}
        """The state with the identity renaming -> (canonical state, orbit)."""

    # -- running --------------------------------------------------------------------

    def boot(self, **session_options: object) -> Live:
        """The initial state: a booted kernel and the M worker tasks."""
        session = Session(
            self.b.profile,
            definitions={TARGET: self.target_toml} if self.b.module_funcs else None,
            **session_options,  # type: ignore[arg-type]
        )
        syms = {}
        for i, name in enumerate(self.names[: self.vmlinux]):
            sym = session.kernel.vmlinux.lookup(name)
            assert sym is not None, name
            syms[sym] = i
        live = Live(session, syms)
        for _ in self._pids:
            self._run(live, f"spawn_task {WORKER_COMM}", check=False)
        return live

    def replay(self, path: Path_) -> Live:
        """Boot and run *path*, unchecked (it was checked when it was found)."""
        live = self.boot()
        for op in path:
            self.apply(live, op, check=False)
        return live

    def module_name(self, live: Live, op: Op) -> str:
        """The module a load of *op* inserts: lpI for the family's I-th
        patch; with ``--family every``, the next of lp1, lp2, ... (a
        definition may be loaded under several names)."""
        return f"lp{live.serial + 1}" if self.b.every else f"lp{op[1] + 1}"

    def line(self, live: Live, op: Op) -> str:
        """The script line of *op* in *live*'s state."""
        kind = op[0]
        if kind == LOAD:
            d = self.family[op[1]]
            return f"insmod test_modules/{self.module_name(live, op)}.ko{d.params(self.tag)}"
        if kind in (DISABLE, ENABLE, FORCE):
            attr, value = ("force", 1) if kind == FORCE else ("enabled", int(kind == ENABLE))
            return f"echo {value} > /sys/kernel/livepatch/lp{op[1]}/{attr}"
        if kind == ATTR:
            return f"echo {op[3]} > /sys/kernel/livepatch/lp{op[1]}/{self.writable[op[2]]}"
        if kind == UNLOAD:
            return f"rmmod lp{op[1]}"
        if kind == SLEEP_IN:
            return f"sleep_task {op[1]} {self.names[op[2]]}"
        if kind == WAKE:
            return f"wake_task {op[1]}"
        if kind == TICK:
            return "sleep 1"
        if kind == TGT_IN:
            return f"insmod test_modules/{TARGET}.ko"
        if kind == TGT_OUT:
            return f"rmmod {TARGET}"
        raise ValueError(f"unknown operation {op}")

    def apply(self, live: Live, op: Op, check: bool = True, states: bool = True) -> list[Violation]:
        """Run *op* on *live*; with *check*, the invariants it broke (without
        *states*, only the temporal one: see Session.run_line())."""
        line = self.line(live, op)
        if op[0] == LOAD:
            name = self.module_name(live, op)
            live.serial += 1
            live.defs[name] = op[1]
            spec = self._specs.get((name, op[1]))
            if spec is None:  # each module is built once per process
                builder = ModuleResolver(self.profile, texts={name: self.tomls[op[1]]})
                spec = self._specs[(name, op[1])] = builder.resolve(name)
            # (with --family every, a refused load's name is taken again,
            # maybe for another definition)
            live.session.resolver.texts[name] = self.tomls[op[1]]
            live.session.resolver.provide(name, spec)
            violations = self._run(live, line, check, states)
            if name not in live.session.kernel.modules.modules:
                # refused: the next load may take the name (module names
                # never enter the state, and scripts read better without gaps)
                live.serial -= 1
                if self.b.every:
                    del live.defs[name]
            return violations
        return self._run(live, line, check, states)

    def _run(self, live: Live, line: str, check: bool, states: bool = True) -> list[Violation]:
        commands = self._commands.get(line)
        if commands is None:
            commands = self._commands[line] = parse_script(line, "<explore>")
        live.commands += 1
        # every line of the explorer's goes through run_line(), which tells
        # the checker when it ran one unchecked: the views can be reused
        return live.session.run_line(line, commands, check, states, reuse_views=True)

    def undo(self, live: Live, op: Op) -> Op | None:
        """An operation that may take *live* back to the state before *op*
        (to be confirmed by comparing the states): a worker wakes from where
        it went to sleep, goes back to sleep where it woke from, an
        attribute gets its old value back, the target module goes or comes
        back (where it is loaded is not part of the state, as a patch
        module's name is not). Called before *op* runs."""
        kind = op[0]
        if kind == SLEEP_IN:
            return (WAKE, op[1])
        if kind == WAKE:
            stack = live.session.kernel.sched.tasks[op[1]].stack
            f = self._new_func.get(stack[-1].name, self._old_func.get(stack[-1].name))
            return None if f is None else (SLEEP_IN, op[1], f)
        if kind == ATTR:
            return (ATTR, op[1], op[2], 1 - op[3])
        if kind == TGT_IN:
            return (TGT_OUT,)
        if kind == TGT_OUT:
            return (TGT_IN,)
        return None

    def ops(self, live: Live) -> list[Op]:
        """The operations to try in *live*'s state, in a fixed order.

        Left out are the ones the verb or the store function refuses before
        looking further: a module that is not there, writing a patch
        attribute's current value, force outside a transition, rmmod of a
        module in use (kmod checks the refcount first).
        """
        kernel = live.session.kernel
        klp = live.session.klp
        modules = kernel.modules.modules
        out: list[Op] = []
        if self.b.every:
            if sum(1 for m in modules.values() if m.klp) < self.b.patches:
                out += [(LOAD, i) for i in range(len(self.family))]
        else:  # (insmod of a loaded module is refused with EEXIST, state unchanged)
            loads = [(LOAD, i) for i in range(len(self.family))]
            out += [op for op in loads if self.module_name(live, op) not in modules]
        for name in sorted(live.defs, key=lambda n: int(n[2:])):
            serial = int(name[2:])
            mod = modules.get(name)
            if mod is None:
                continue
            patch = getattr(mod.code, "patch", None)
            if patch is not None and patch.kobj is not None:
                if patch.enabled:
                    out.append((DISABLE, serial))
                elif patch is klp.transition_patch:
                    out.append((ENABLE, serial))
                if patch is klp.transition_patch:
                    out.append((FORCE, serial))
                for a, attr in enumerate(self.writable):
                    out.append((ATTR, serial, a, int(not getattr(patch, attr))))
            if mod.refcnt == 0:
                out.append((UNLOAD, serial))
        tgt = modules.get(TARGET)
        for pid in self._pids:
            if kernel.sched.tasks[pid].stack:
                out.append((WAKE, pid))
            else:
                out += [
                    (SLEEP_IN, pid, f)
                    for f in range(self.b.funcs)
                    if f < self.vmlinux or tgt is not None
                ]
        if kernel.clock.pending():
            out.append((TICK,))
        if self.b.module_funcs:
            if tgt is None:
                out.append((TGT_IN,))
            elif tgt.refcnt == 0:
                out.append((TGT_OUT,))
        if self.b.ops:
            kinds = self.kinds
            out = [op for op in out if op[0] in kinds]
        return out

    # -- the state ----------------------------------------------------------------

    def exact(self, live: Live) -> Encoding:
        """The state under its own names, workers by pid: two sessions with
        the same one behave the same under the same operations (not only
        under renamed ones), so one can stand in for the other."""
        return self.encode(live, self.perms[0], sort_tasks=False)

    def key(self, live: Live, exact: Encoding | None = None) -> tuple[bytes, int]:
        """The canonical state as bytes, and the size of its orbit under the
        symmetry group: how many states the search without symmetry
        reduction sees in its place. *exact*: :meth:`exact` of *live*, if
        the caller has it."""
        if exact is None:
            exact = self.exact(live)
        if not self.b.symmetry:
            return _bytes(exact), 1
        first = (*exact[:-1], tuple(sorted(exact[-1])))
        raw = _bytes(first)
        known = self._canonical.get(raw)
        if known is None:
            encodings = {first} | {self.encode(live, p, sort_tasks=True) for p in self.perms[1:]}
            best = min(encodings)
            known = _bytes(best), len(encodings) * _arrangements(best[-1])
            if len(self._canonical) > 100_000:  # a cache (~2 KB an entry), not a record
                self._canonical.clear()
            self._canonical[raw] = known
        return known

    def encode(self, live: Live, perm: Perm, sort_tasks: bool) -> Encoding:
        """The abstract state with the names of *perm*, as nested tuples of
        ints. What it holds, in order: the patches in klp_patches order,
        the transition, the func_stacks, the other loaded patch modules,
        the target module, the chain's members that are loaded, the system
        tasks, idle CPUs to kick, and the worker tasks (sorted, with
        *sort_tasks*: they are interchangeable)."""
        fperm, _, rperm, _ = perm
        session = live.session
        kernel = session.kernel
        klp = session.klp
        modules = kernel.modules.modules
        tgt = modules.get(TARGET)
        tgt_syms: dict[Symbol, int] = {}
        if tgt is not None:
            for f in range(self.vmlinux, self.b.funcs):
                sym = tgt.text.lookup(self.names[f])
                if sym is not None:
                    tgt_syms[sym] = f
        position = {id(p): i for i, p in enumerate(klp.patches)}
        workers = [kernel.sched.tasks[pid] for pid in self._pids]

        def old_index(sym: Symbol) -> int:
            i = live.vmlinux_syms.get(sym)
            if i is None:
                i = tgt_syms.get(sym)
            if i is None:  # a function of a target module that has gone
                return 100 + self._old_func.get(sym.name, 99)
            return fperm[i]

        def loaded(code: Symbol) -> bool:
            """Is *code* of the patch module loaded under its name now (not
            of an earlier module of that name, since unloaded)?"""
            mod = modules.get(code.owner.name)
            return mod is not None and mod.text is code.owner

        # code of each patch module on the workers' stacks: (module, function) -> count
        on_stacks: dict[tuple[str, int], int] = {}
        for task in workers:
            for code in task.stack:
                if code.owner.name in live.defs and loaded(code):
                    k = (code.owner.name, fperm[self._new_func.get(code.name, 0)])
                    on_stacks[k] = on_stacks.get(k, 0) + 1

        def definition(name: str) -> tuple[object, ...]:
            # not replaceable: the patch's own (writable) value is in module_desc()
            d = self.family[live.defs[name]].renamed(perm)
            return (d.funcs, d.replace, d.replace_set, d.states)

        def module_desc(name: str) -> tuple[object, ...]:
            mod = modules[name]
            patch = getattr(mod.code, "patch", None)
            refs = tuple(sorted((f, n) for (m, f), n in on_stacks.items() if m == name))
            mstate = (mod.state, mod.refcnt, mod.holders.get("livepatch", 0), int(mod.klp_alive))
            if patch is None or patch.freed:
                # A freed patch is never enabled again: what it patched no
                # longer matters, only what pins its module and its code on stacks.
                return (0, mstate, refs, int(patch is not None and patch.forced))
            objs = []
            for obj in patch.obj_list:
                funcs = tuple(
                    sorted(
                        (
                            fperm[self._old_func[f.old_name]]
                            if f.old_name in self._old_func
                            else -1,
                            int(f.nop),
                            int(f.patched),
                            int(f.transition),
                            int(f.old_func is not None),
                        )
                        for f in obj.func_list
                    )
                )
                objs.append(
                    (
                        int(obj.name is not None),
                        int(obj.patched),
                        int(obj.mod is not None),
                        int(obj.dynamic),
                        funcs,
                    )  # fmt: skip
                )
            objs.sort()
            work = patch.free_work
            return (
                1,
                mstate,
                refs,
                definition(name),
                int(patch.enabled),
                int(patch.forced),
                int(patch.kobj is not None),
                int(work is not None and work.pending),
                int(patch.replaceable),
                rperm[int(patch.replace)] if self.tag else int(bool(patch.replace)),
                tuple(objs),
            )

        def module_ref(name: str) -> tuple[object, ...]:
            mod = modules.get(name)
            patch = getattr(mod.code, "patch", None) if mod is not None else None
            if patch is not None and id(patch) in position:
                return (0, position[id(patch)])
            if mod is None:  # code of a module that has been unloaded
                return (2, definition(name))
            return (1, module_desc(name))

        def code_ref(code: Symbol) -> tuple[object, ...]:
            name = code.owner.name
            if name in live.defs:
                ref = module_ref(name) if loaded(code) else (2, definition(name))
                return (1, ref, fperm[self._new_func.get(code.name, 0)])
            return (0, old_index(code))

        live_names = [p.mod.name for p in klp.patches]
        patches = tuple(module_desc(n) if n in modules else (9, definition(n)) for n in live_names)
        others = tuple(
            sorted(module_desc(n) for n in live.defs if n in modules and n not in live_names)
        )
        stacks = []
        for old_func, ops in klp.ops.items():
            entries = tuple(
                (module_ref(f.obj.patch.mod.name) if f.obj and f.obj.patch else (9,), int(f.nop))
                for f in ops.func_stack
            )
            armed = int(old_func.fentry is not None)
            stacks.append((old_index(old_func), entries, armed, len(klp.ftrace.ops_on(old_func))))
        stacks.sort()
        tp = klp.transition_patch
        signals = klp.signals_cnt
        transition = (
            position.get(id(tp), -2) if tp is not None else -1,
            klp.target_state,
            signals if signals < 15 else 15 + signals % 15,  # SIGNALS_TIMEOUT
            int(klp.sched_try_switch_key),
            int(klp.transition_work.pending),
        )
        sched = kernel.sched
        system_tasks = tuple(
            (t.patch_state, int(t.patch_pending), int(t.signal_pending), int(t.woken))
            for t in sched.all_tasks()
            if t.pid not in self._pids
        )
        worker_states = [
            (
                t.patch_state,
                int(t.patch_pending),
                int(t.signal_pending),
                int(t.woken),
                tuple(code_ref(c) for c in t.stack),
            )
            for t in workers
        ]
        if sort_tasks:
            worker_states.sort()
        target = (1, tgt.state, tgt.refcnt, int(tgt.klp_alive)) if tgt is not None else (0,)
        # The chain's loads are offered by name (lpI while no lpI is loaded),
        # so which members are loaded decides what comes next, whatever is
        # left of their patches (a freed one, a flipped replaceable).
        members: tuple[tuple[object, ...], ...] = ()
        if not self.b.every:
            held = (self.family[i].renamed(perm) for n, i in live.defs.items() if n in modules)
            members = tuple(sorted(d.encoding() for d in held))
        return (
            patches,
            transition,
            tuple(stacks),
            others,
            target,
            members,
            system_tasks,
            tuple(sorted(sched.idle_wakeups())),
            tuple(worker_states),
        )


def _bytes(encoding: Encoding) -> bytes:
    """An encoding as bytes, the same for equal encodings: marshal's
    version 2, since later versions mark objects that happen to be shared
    (FLAG_REF), so that equal tuples built differently differ in bytes."""
    return marshal.dumps(encoding, 2)


def _arrangements(items: object) -> int:
    """How many orderings of the multiset *items* there are."""
    assert isinstance(items, tuple)
    counts: dict[object, int] = {}
    for it in items:
        counts[it] = counts.get(it, 0) + 1
    n = factorial(len(items))
    for c in counts.values():
        n //= factorial(c)
    return n


# -- the search -------------------------------------------------------------------


def owner(key: bytes, jobs: int) -> int:
    """The worker that owns canonical state *key*: the same in every process."""
    return zlib.crc32(key) % jobs


Broken = tuple[tuple[str, str], ...]
"""The state invariants a state breaks: (invariant, detail)."""
Candidate = tuple[bytes, Path_, int, Broken]
"""A state found by a step: (key, path, orbit size, state invariants it breaks)."""


@dataclass
class Found:
    """The first (shortest, then least) path that broke an invariant, and how
    many steps broke it."""

    invariant: str
    path: Path_
    detail: str
    count: int = 1

    def merge(self, other: Found) -> None:
        self.count += other.count
        if (len(other.path), other.path) < (len(self.path), self.path):
            self.path, self.detail = other.path, other.detail


def merge_found(into: dict[str, Found], found: Iterable[Found]) -> None:
    for f in found:
        if f.invariant in into:
            into[f.invariant].merge(f)
        else:
            into[f.invariant] = Found(f.invariant, f.path, f.detail, f.count)


@dataclass
class LevelStats:
    """What one worker did for one level."""

    new: int = 0
    """States first seen at this level that this worker owns."""
    orbit: int = 0
    """Their orbit sizes, summed: what a search without symmetry reduction sees."""
    broken: int = 0
    """How many of them break a state invariant (they are not expanded)."""
    transitions: int = 0
    replays: int = 0
    undone: int = 0
    """Steps taken back by an undoing operation instead of a replay."""
    found: dict[str, Found] = field(default_factory=dict)
    seconds: float = 0.0
    cpu: float = 0.0
    """CPU seconds the workers spent on the level, summed."""
    cpu_max: float = 0.0
    """The most CPU seconds one worker spent on it: the level's critical
    path when every worker has a CPU to itself (the machine is shared)."""
    waiting: int = 0
    """Candidates for the next level (set by the coordinator)."""

    def add(self, other: LevelStats) -> None:
        self.new += other.new
        self.orbit += other.orbit
        self.broken += other.broken
        self.transitions += other.transitions
        self.replays += other.replays
        self.undone += other.undone
        merge_found(self.found, other.found.values())
        self.seconds = max(self.seconds, other.seconds)
        self.cpu += other.cpu
        self.cpu_max = max(self.cpu_max, other.cpu_max)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep what exists now (the program, the visited states, the frontier)
    out of the cycle collector's way while a level expands. Replays leave
    sessions behind that only the collector frees (they are graphs of
    cycles), so it runs often, and each full collection traced the whole
    heap (measured: the collector took 25-40% of a search, half that since)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Worker:
    """One partition of the state space: the canonical states whose
    :func:`owner` is *index*, the frontier of those states, and its expansion."""

    def __init__(self, b: Bounds, index: int, jobs: int):
        self.model = Model(b)
        self.index = index
        self.jobs = jobs
        self.visited: set[bytes] = set()
        self.known: set[bytes] = set()
        """Keys this worker owns or has sent: never sent again."""
        self.frontier: list[Path_] = []

    def step(
        self, incoming: list[Candidate], expand: bool
    ) -> tuple[LevelStats, list[list[Candidate]]]:
        """Take this level's candidates that this worker owns; keep the new
        ones (each with its least path); with *expand*, run every operation
        from each new state that breaks no state invariant. Returns the
        level's stats and the next level's candidates, by owner."""
        start, cpu = time.perf_counter(), time.thread_time()
        stats = LevelStats()
        best: dict[bytes, Candidate] = {}
        for cand in incoming:
            key = cand[0]
            if key in self.visited:
                continue
            old = best.get(key)
            if old is None or cand[1] < old[1]:
                best[key] = cand
        self.frontier = []
        for key, path, orbit, broken in sorted(best.values(), key=lambda c: c[1]):
            self.visited.add(key)
            self.known.add(key)
            stats.new += 1
            stats.orbit += orbit
            if broken:
                # counted per state, by its owner: the same whatever the partition
                stats.broken += 1
                merge_found(stats.found, [Found(inv, path, what) for inv, what in broken])
            else:
                self.frontier.append(path)
        buckets: list[list[Candidate]] = [[] for _ in range(self.jobs)]
        if expand:
            out: dict[bytes, Candidate] = {}
            with frozen_heap():
                for path in self.frontier:
                    self._expand(path, stats, out)
            for cand in out.values():
                buckets[owner(cand[0], self.jobs)].append(cand)
        stats.seconds = time.perf_counter() - start
        stats.cpu = stats.cpu_max = time.thread_time() - cpu
        return stats, buckets

    def _expand(self, path: Path_, stats: LevelStats, out: dict[bytes, Candidate]) -> None:
        """Every operation from the state at *path*. A step that changes the
        state leaves the session in another one; the next operation needs
        the state at *path* back: an operation that undoes the step
        (:meth:`Model.undo`), if the state it gives is the same under its
        own names (:meth:`Model.exact`), else a replay of *path* from boot.
        A step that changes nothing of the state (a refused load, a failed
        write) needs neither: the next operation runs on the same session."""
        model = self.model
        live = model.replay(path)
        stats.replays += 1
        exact = model.exact(live)
        ops = model.ops(live)
        for i, op in enumerate(ops):
            if live.commands >= MAX_COMMANDS:
                live = model.replay(path)
                stats.replays += 1
            child_path = path + (op,)
            stats.transitions += 1
            undo = model.undo(live, op)
            try:
                violations = model.apply(live, op, states=False)
            except Exception as e:  # noqa: BLE001 (the model itself failed: a finding)
                merge_found(stats.found, [Found(CRASH, child_path, f"{type(e).__name__}: {e}")])
                if i + 1 < len(ops):
                    live = model.replay(path)
                    stats.replays += 1
                continue
            # the temporal invariant: once per step
            merge_found(stats.found, [Found(v.invariant, child_path, v.detail) for v in violations])
            child_exact = model.exact(live)
            if child_exact == exact:
                continue
            child, orbit = model.key(live, child_exact)
            if child not in self.known:
                # A state this worker has not seen: check it (a known one was
                # checked when it was first seen). Its owner records what it
                # breaks, once per state.
                checker = live.session.checker
                assert checker is not None
                broken = tuple((v.invariant, v.detail) for v in checker.state_violations())
                self.known.add(child)
                out[child] = (child, child_path, orbit, broken)
            if i + 1 == len(ops):
                break
            if undo is not None and live.commands < MAX_COMMANDS:
                try:
                    model.apply(live, undo, check=False)
                    if model.exact(live) == exact:
                        stats.undone += 1
                        continue
                except Exception:  # noqa: BLE001 (not a step of the search: replay)
                    pass
            live = model.replay(path)
            stats.replays += 1


class Backend(Protocol):
    """Runs the workers of a search: in this process, in local processes or
    on Ray. It holds the candidates between levels and routes each to the
    worker that owns it."""

    jobs: int

    def seed(self, candidates: list[Candidate]) -> None:
        """The first level's candidates (the boot state)."""
        ...

    def step(self, expand: bool) -> tuple[list[LevelStats], int]:
        """Every worker takes the candidates it owns (:meth:`Worker.step`);
        the workers' stats, and how many candidates wait for the next level."""
        ...

    def close(self) -> None: ...


def route(jobs: int, outcomes: Iterable[list[list[Candidate]]]) -> list[list[Candidate]]:
    """The buckets of every worker, gathered by owner."""
    incoming: list[list[Candidate]] = [[] for _ in range(jobs)]
    for buckets in outcomes:
        for w, cands in enumerate(buckets):
            incoming[w].extend(cands)
    return incoming


class LocalBackend:
    """The workers in this process, one after the other (``--jobs 1``; more
    only to test the partitioning)."""

    def __init__(self, b: Bounds, jobs: int = 1):
        self.jobs = jobs
        self.workers = [Worker(b, i, jobs) for i in range(jobs)]
        self.incoming: list[list[Candidate]] = [[] for _ in range(jobs)]

    def seed(self, candidates: list[Candidate]) -> None:
        self.incoming = route(self.jobs, [[[c for c in candidates if owner(c[0], self.jobs) == w]
                                           for w in range(self.jobs)]])  # fmt: skip

    def step(self, expand: bool) -> tuple[list[LevelStats], int]:
        outcomes = [w.step(self.incoming[i], expand) for i, w in enumerate(self.workers)]
        self.incoming = route(self.jobs, (buckets for _, buckets in outcomes))
        return [stats for stats, _ in outcomes], sum(map(len, self.incoming))

    def close(self) -> None:
        pass


@dataclass
class Result:
    """What a search found."""

    bounds: Bounds
    levels: list[LevelStats] = field(default_factory=list)
    """Per depth, the workers' stats summed."""
    found: dict[str, Found] = field(default_factory=dict)
    seconds: float = 0.0
    exhausted: bool = False
    """The frontier ran out before the depth bound: every reachable state was seen."""
    interrupted: bool = False
    timed_out: bool = False
    """The time limit ran out: the levels in :attr:`levels` are the complete ones."""
    stopped: bool = False
    """Stopped at the first level that broke an invariant (``--first``)."""
    jobs: int = 1
    backend: str = "local"

    @property
    def states(self) -> int:
        return sum(lv.new for lv in self.levels)

    @property
    def naive_states(self) -> int:
        return sum(lv.orbit for lv in self.levels)

    @property
    def transitions(self) -> int:
        return sum(lv.transitions for lv in self.levels)

    @property
    def depth_reached(self) -> int:
        return max((d for d, lv in enumerate(self.levels) if lv.new), default=0)

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds else 0.0

    @property
    def reduction(self) -> float:
        return self.naive_states / self.states if self.states else 1.0


class TimeUp(Exception):
    """The time limit of :func:`time_limit` ran out."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TimeUp in this (the main) thread after *seconds* (None: never)."""
    if seconds is None:
        yield
        return

    def alarm(signum: int, frame: object) -> None:
        raise TimeUp

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def explore(
    b: Bounds,
    backend: Backend | None = None,
    progress: Callable[[int, Result], None] | None = None,
    result: Result | None = None,
    first: bool = False,
) -> Result:
    """Search *b* breadth first; *progress* hears after every level. With
    *first*, stop after the level where an invariant first broke (its
    counterexamples are the shortest). On KeyboardInterrupt, *result* (if
    given) holds what was found so far."""
    backend = backend or LocalBackend(b)
    result = result if result is not None else Result(b)
    return _explore(b, backend, progress, result, first)


def _level(backend: Backend, expand: bool) -> LevelStats:
    stats, waiting = backend.step(expand)
    level = LevelStats()
    for st in stats:
        level.add(st)
    level.waiting = waiting
    return level


def _explore(
    b: Bounds,
    backend: Backend,
    progress: Callable[[int, Result], None] | None,
    result: Result,
    first: bool,
) -> Result:
    result.jobs = backend.jobs
    start = time.perf_counter()
    model = Model(b)
    root = model.boot()
    key, orbit = model.key(root)
    from klpsim.model.invariants import check_all

    broken = tuple((v.invariant, v.detail) for v in check_all(root.session.klp))
    backend.seed([(key, (), orbit, broken)])
    try:
        for depth in range(b.depth + 1):
            level = _level(backend, expand=depth < b.depth)
            result.levels.append(level)
            merge_found(result.found, level.found.values())
            result.seconds = time.perf_counter() - start
            if progress is not None:
                progress(depth, result)
            if not level.waiting:
                result.exhausted = depth < b.depth or level.new == 0
                break
            if first and result.found:
                # count the states of the next level (the counterexamples'
                # ends) without expanding them
                result.stopped = True
                level = _level(backend, expand=False)
                result.levels.append(level)
                merge_found(result.found, level.found.values())
                break
    except TimeUp:
        result.timed_out = True
    except KeyboardInterrupt:
        result.interrupted = True
        result.seconds = time.perf_counter() - start
        raise
    finally:
        backend.close()
    result.seconds = time.perf_counter() - start
    return result


# -- counterexamples ---------------------------------------------------------------


def script_of(b: Bounds, path: Path_) -> Session:
    """A session that ran *path* line by line (its lines and definitions
    are what :meth:`Session.write_scenario` writes)."""
    model = Model(b)
    live = model.boot()
    for i, op in enumerate(path):
        try:
            model.apply(live, op, check=False)
        except Exception:  # noqa: BLE001 (a crash ends its counterexample: it is in lines)
            if i + 1 < len(path):
                raise
    return live.session


def write_counterexample(b: Bounds, found: Found, directory: Path) -> tuple[Path, str | None]:
    """Write the counterexample for *found* as ``directory/<invariant>.sh``
    with its modules in ``directory/test_modules/``, then run it as
    ``klpsim run --check`` would. Returns the script and the line the check
    reported (None: it did not reproduce, an explorer bug)."""
    session = script_of(b, found.path)
    script = directory / f"{found.invariant}.sh"
    header = (
        f"Found by: klpsim explore {' '.join(b.argv())}\n"
        f"The shortest sequence that breaks {found.invariant} ({len(found.path)} steps"
        f" after the {b.tasks} spawn_task lines); 'klpsim run --check --kernel"
        f" {b.profile}' reports:\n  {found.invariant}: {found.detail}"
    )
    session.write_scenario(script, header)
    check = Session(b.profile, script_dir=directory, path=str(script))
    try:
        check.run(script.read_text(), check=True)
    except CheckFailed as e:
        return script, str(e)
    except Exception as e:  # noqa: BLE001 (a model crash reproduces as one)
        if found.invariant == CRASH:
            return script, f"{type(e).__name__}: {e}"
        raise
    return script, None


# -- the report ------------------------------------------------------------------


def progress_line(depth: int, r: Result) -> str:
    """One line per BFS level, for stderr."""
    lv = r.levels[-1]
    return (
        f"depth {depth}: {lv.new} new states ({r.states} in all), {lv.transitions} transitions,"
        f" {r.seconds:.1f} s, {r.rate:.0f} states/s"
    )


def report(r: Result, written: dict[str, tuple[Path, str | None]] | None = None) -> str:
    """The summary ``klpsim explore`` prints."""
    b = r.bounds
    out = [f"klpsim explore: {b.profile}: {b.label()}"]
    if r.interrupted:
        out.append("interrupted: the statistics so far")
    if r.timed_out:
        out.append(f"time limit: depths 0-{len(r.levels) - 1} complete, the next one not")
    if r.stopped:
        out.append(f"stopped at depth {r.depth_reached}, where the first invariant broke")
    reach = (
        f"exhausted at depth {r.depth_reached}: every reachable state was seen"
        if r.exhausted
        else f"{r.depth_reached}"
    )
    where = f"{r.jobs} local processes" if r.backend == "processes" else r.backend
    if r.backend == "local":
        where = "this process"
    elif r.backend.startswith("ray"):
        where = f"{r.jobs} Ray workers ({r.backend})"
    out += [
        f"states:        {r.states} canonical",
        f"without symmetry reduction: {r.naive_states} (reduction factor {r.reduction:.2f})",
        f"transitions:   {r.transitions}",
        f"depth reached: {reach}",
        f"time:          {r.seconds:.1f} s on {where}, {r.rate:.0f} states/s",
    ]
    if not r.found:
        out.append("invariants:    all hold" + (" so far" if r.interrupted else ""))
    for f in sorted(r.found.values(), key=lambda f: (len(f.path), f.invariant)):
        out.append(
            f"broken:        {f.invariant} by {f.count} step(s), first after {len(f.path)}:"
            f" {f.detail}"
        )
        if written and f.invariant in written:
            script, check = written[f.invariant]
            out.append(f"  counterexample: {script}")
            if check is None:
                out.append("  (klpsim run --check does not reproduce it: an explorer bug)")
            elif f.invariant == CRASH:
                out.append("  (the model raised: klpsim run stops there with exit 70)")
    return "\n".join(out) + "\n"
