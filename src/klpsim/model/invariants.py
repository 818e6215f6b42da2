"""Invariants of the livepatch model, checked after every step.

The state machines, ``klpsim run --check`` and the explorer share them.
Each check returns a list of :class:`Violation`; an empty list means the
invariant holds. :class:`ViewTracker` checks the temporal ones: which code a
task runs may change only when that task switches.
"""

from collections.abc import Callable
from typing import NamedTuple

from klpsim.kernel.machine import Kernel
from klpsim.kernel.symbols import Regs, Symbol
from klpsim.kernel.tasks import Task
from klpsim.livepatch import patch as patch_mod
from klpsim.livepatch.core import Klp
from klpsim.livepatch.events import KlpEvent, TransitionEvent, TransitionPhase, When
from klpsim.livepatch.patch import KlpOps, klp_func_for_task
from klpsim.livepatch.structs import (
    KLP_TRANSITION_IDLE,
    KLP_TRANSITION_PATCHED,
    KlpFunc,
    KlpPatch,
)

__all__ = ["Violation", "check_all", "ViewTracker", "CHECKS", "INVARIANTS", "SET_INVARIANTS"]

INVARIANTS = (
    "transition-state",
    "ftrace-plumbing",
    "no-freed-func",
    "func-stack-order",
    "patched-runs-top",
    "task-runs-stack-entry",
    "module-refcount",
    "freed-sysfs-gone",
    "one-patch-per-set",
    "disjoint-sets",
    "per-task-consistency",
    "callbacks-pair",
)
"""Every invariant's name, in the order they are checked: the CHECKS, then
ViewTracker's per-task consistency and the checker's callback pairs."""
SET_INVARIANTS = ("one-patch-per-set", "disjoint-sets")
"""Checked only where the policy promises them (ReplacePolicy.disjoint_sets)."""


class Violation(NamedTuple):
    """One broken invariant."""

    invariant: str
    """Short name, e.g. ``per-task-consistency``."""
    detail: str
    """What was seen, naming the functions and tasks involved."""
    functions: tuple[str, ...] = ()


def _patch_name(func: KlpFunc) -> str:
    return func.obj.patch.name if func.obj and func.obj.patch else "?"


def transition_state(klp: Klp) -> list[Violation]:
    """klp_transition_patch, klp_target_state and every task's patch_state
    agree: a transition patch exactly while the target state is not IDLE,
    that patch in klp_patches, and outside a transition every task IDLE.
    (There is only one klp_transition_patch, so "at most one transition" is
    not something to check; that it is consistent is.)"""
    out = []
    tp = klp.transition_patch
    if (tp is None) != (klp.target_state == KLP_TRANSITION_IDLE):
        out.append(Violation("transition-state", "target state and transition patch disagree"))
    if tp is not None and tp not in klp.patches:
        out.append(Violation("transition-state", f"transition patch {tp.name} not in klp_patches"))
    if tp is None:
        busy = [t for t in klp.kernel.sched.all_tasks() if t.patch_state != KLP_TRANSITION_IDLE]
        if busy:
            out.append(
                Violation(
                    "transition-state",
                    f"no transition, but {busy[0].comm}:{busy[0].pid} has "
                    f"patch_state {busy[0].patch_state}",
                )
            )
    return out


def func_stack_order(klp: Klp) -> list[Violation]:
    """Every func_stack lists its patches newest first, in klp_patches order,
    and holds no func of a freed patch."""
    out = []
    order = {id(p): i for i, p in enumerate(klp.patches)}
    for old_func, ops in klp.ops.items():
        positions = []
        for func in ops.func_stack:
            patch = func.obj.patch if func.obj else None
            if patch is None or id(patch) not in order:
                state = "freed" if patch is not None and patch.freed else "not in klp_patches"
                out.append(
                    Violation(
                        "no-freed-func",
                        f"func_stack of {old_func.name} holds "
                        f"{func!r} of {state} patch {_patch_name(func)}",
                        (old_func.name,),
                    )
                )
                continue
            positions.append(order[id(patch)])
        if positions != sorted(positions, reverse=True):
            out.append(
                Violation(
                    "func-stack-order",
                    f"func_stack of {old_func.name} is not in klp_patches order",
                    (old_func.name,),
                )
            )
    return out


def expected_code(ops: KlpOps, task: Task) -> Symbol:
    """The code a task must run for a patched function, from func_stack alone."""
    func = klp_func_for_task(ops, task.patch_state)
    if func is None or func.nop or func.new_func is None:
        return ops.old_func
    return func.new_func


def tasks_run_the_right_code(klp: Klp) -> list[Violation]:
    """A patched (or idle) task runs the top of each func_stack; an unpatched
    task during a transition runs the entry below it or the original."""
    out = []
    kernel = klp.kernel
    for old_func, ops in klp.ops.items():
        top = ops.func_stack[0]
        for task in _sample_tasks(kernel):
            want = expected_code(ops, task)
            if (
                task.patch_state in (KLP_TRANSITION_PATCHED, KLP_TRANSITION_IDLE)
                and not top.nop
                and want is not top.new_func
            ):
                out.append(
                    Violation(
                        "patched-runs-top",
                        f"{task.comm}:{task.pid} would not run the top of {old_func.name}",
                        (old_func.name,),
                    )
                )
            got = klp_redirect(klp, task, old_func)
            if got is not want:
                out.append(
                    Violation(
                        "task-runs-stack-entry",
                        f"{task.comm}:{task.pid} (state {task.patch_state}) runs "
                        f"{got.owner.name}:{got.name} for {old_func.name}, expected "
                        f"{want.owner.name}:{want.name}",
                        (old_func.name,),
                    )
                )
    return out


def klp_redirect(klp: Klp, task: Task, old_func: Symbol) -> Symbol:
    """Where livepatch sends *task*'s call of *old_func*: the ftrace handler
    itself, run alone, so that checking has no side effects on other ftrace
    users (tracers, probes, BPF programs)."""
    ops = klp.ops.get(old_func)
    if ops is None:
        return old_func
    regs = Regs(old_func, ())
    patch_mod.klp_ftrace_handler(task, old_func, ops.fops, regs)
    return regs.ip


def ftrace_plumbing(klp: Klp) -> list[Violation]:
    """Every klp_ops is registered with ftrace on its function, and the call
    site is armed while ftrace is enabled."""
    out = []
    for old_func, ops in klp.ops.items():
        if ops.fops not in klp.ftrace.ops_on(old_func):
            out.append(
                Violation(
                    "ftrace-plumbing",
                    f"klp_ops of {old_func.name} is not registered on its function",
                    (old_func.name,),
                )
            )
        elif klp.ftrace.ftrace_enabled and old_func.fentry is None:
            out.append(
                Violation(
                    "ftrace-plumbing",
                    f"the call site of {old_func.name} is not armed",
                    (old_func.name,),
                )
            )
    return out


def _sample_tasks(kernel: Kernel) -> list[Task]:
    """Every task, or a spread of them on a big machine."""
    tasks = list(kernel.sched.all_tasks())
    if len(tasks) > 64:
        step = len(tasks) // 32
        tasks = tasks[::step]
    return tasks


def module_refcounts(klp: Klp) -> list[Violation]:
    """A livepatch module holds one reference while its patch lives (or was
    forced), none once it is freed."""
    out = []
    for mod in klp.kernel.modules.modules.values():
        patch = getattr(mod.code, "patch", None)  # set by LivepatchCode.init()
        if not mod.klp or not isinstance(patch, KlpPatch):
            continue
        if patch.kobj is None and not patch.freed:
            continue  # failed enable in progress, or not yet enabled
        want = 0 if patch.freed and not patch.forced else 1
        have = mod.holders.get("livepatch", 0)  # BPF links may hold more
        if have != want:
            out.append(
                Violation(
                    "module-refcount",
                    f"{mod.name} holds {have} livepatch reference(s), expected {want}",
                )
            )
    return out


def freed_sysfs_gone(klp: Klp) -> list[Violation]:
    """A patch whose free work ran has no directory under /sys/kernel/livepatch."""
    out = []
    live = {p.name for p in klp.patches} | {p.name for p in klp.all_patches if not p.freed}
    for patch in klp.freed:
        if (
            patch.name not in live
            and klp.kernel.fs.lookup(f"/sys/kernel/livepatch/{patch.name}") is not None
        ):
            out.append(
                Violation(
                    "freed-sysfs-gone",
                    f"/sys/kernel/livepatch/{patch.name} still exists after its free work ran",
                )
            )
    return out


def one_patch_per_set(klp: Klp) -> list[Violation]:
    """replace-set: once transitions end, at most one enabled patch per set."""
    if not klp.policy.disjoint_sets or klp.transition_patch is not None:
        return []
    seen: dict[int, str] = {}
    out = []
    for patch in klp.patches:
        if not patch.enabled:
            continue
        if patch.replace_set in seen:
            out.append(
                Violation(
                    "one-patch-per-set",
                    f"set {patch.replace_set} has "
                    f"{seen[patch.replace_set]} and {patch.name} enabled",
                )
            )
        seen[patch.replace_set] = patch.name
    return out


def disjoint_sets(klp: Klp) -> list[Violation]:
    """replace-set: no function is patched by two sets."""
    if not klp.policy.disjoint_sets:
        return []
    out = []
    for old_func, ops in klp.ops.items():
        sets = {
            f.obj.patch.replace_set
            for f in ops.func_stack
            if not f.nop and f.obj is not None and f.obj.patch is not None
        }
        if len(sets) > 1:
            out.append(
                Violation(
                    "disjoint-sets",
                    f"{old_func.name} is patched by sets {sorted(sets)}",
                    (old_func.name,),
                )
            )
    return out


CHECKS: tuple[Callable[[Klp], list[Violation]], ...] = (
    transition_state,
    ftrace_plumbing,
    func_stack_order,
    tasks_run_the_right_code,
    module_refcounts,
    freed_sysfs_gone,
    one_patch_per_set,
    disjoint_sets,
)


def check_all(klp: Klp) -> list[Violation]:
    out = []
    for check in CHECKS:
        out.extend(check(klp))
    return out


View = tuple[int, str, Symbol]
"""(pid, comm, function): what a task runs for one function."""


class ViewTracker:
    """Per-task consistency: the code a task runs for a function changes only
    when that task switches to the target state of a transition.

    Call :meth:`snapshot` before a step and :meth:`compare` after; the
    model also calls it around klp_complete_transition(), where every
    view must stay as it was.
    """

    def __init__(self, klp: Klp):
        self.klp = klp
        self.funcs: dict[Symbol, str] = {}  # every function ever patched
        self.before: dict[View, tuple[Symbol | None, int]] | None = None
        self.violations: list[Violation] = []
        klp.tp.register(self._event)

    def _views(self) -> dict[View, tuple[Symbol | None, int]]:
        kernel = self.klp.kernel
        for f in self.klp.ops:
            self.funcs.setdefault(f, f.name)
        views: dict[View, tuple[Symbol | None, int]] = {}
        for task in _sample_tasks(kernel):
            for f in self.funcs:
                if f.owner.name not in kernel.kallsyms.objects:
                    continue  # its module is gone
                got = klp_redirect(self.klp, task, f)
                views[(task.pid, task.comm, f)] = (got, task.patch_state)
        return views

    def snapshot(self) -> None:
        self.before = self._views()

    def compare(self, where: str) -> list[Violation]:
        if self.before is None:
            return []
        after = self._views()
        out = []
        for key, (code, state) in after.items():
            old = self.before.get(key)
            if old is None or old[0] is code:
                continue
            old_code, old_state = old
            switched = old_state != state and state != KLP_TRANSITION_IDLE
            if not switched:
                pid, comm, f = key
                out.append(
                    Violation(
                        "per-task-consistency",
                        f"{where}: {comm}:{pid} did not switch, but {f.name} changed from "
                        f"{_where(old_code, f)} to {_where(code, f)}",
                        (f.name,),
                    )
                )
        self.before = after
        self.violations.extend(out)
        return out

    def _event(self, event: KlpEvent) -> None:
        """Starting, reversing and completing a transition switch no task:
        no view may change across them."""
        if not isinstance(event, TransitionEvent):
            return
        if event.when is When.BEFORE:
            self.snapshot()
        elif event.phase is TransitionPhase.START:
            self.compare("starting the transition")
        elif event.phase is TransitionPhase.COMPLETE:
            self.compare("completing the transition")


def _where(code: Symbol | None, old_func: Symbol) -> str:
    if code is None:
        return "an override"
    return "the original" if code is old_func else f"{code.owner.name}:{code.name}"
