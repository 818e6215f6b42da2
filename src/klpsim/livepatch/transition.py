"""The consistency model: per-task patch states and transitions.

Mirrors kernel/livepatch/transition.c. A transition moves every task from
the initial state (UNPATCHED when patching, PATCHED when unpatching) to
klp_target_state, one task at a time, at safe points: when its stack holds
none of the functions being changed (klp_try_switch_task), at the return to
user space, in the idle loop, or in __schedule() for freezable kthreads.

Modelling note: a task's stack is a list of the functions it is inside,
so "an address within [func, func+size)" is "that function is on the
stack".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.kernel.clock import NSEC_PER_SEC
from klpsim.kernel.errno import EADDRINUSE, EBUSY, EINVAL
from klpsim.livepatch import core
from klpsim.livepatch.events import (
    Blocker,
    PatchesReplaced,
    TaskSwitched,
    TransitionBlocked,
    TransitionEvent,
    TransitionForced,
    TransitionPhase,
    TransitionTarget,
    When,
    function_label,
)
from klpsim.livepatch.patch import klp_unpatch_objects
from klpsim.livepatch.structs import (
    KLP_TRANSITION_IDLE,
    KLP_TRANSITION_PATCHED,
    KLP_TRANSITION_UNPATCHED,
    KlpFunc,
    KlpPatch,
)

if TYPE_CHECKING:
    from klpsim.kernel.symbols import Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.livepatch.core import Klp

__all__ = [
    "klp_init_transition",
    "klp_start_transition",
    "klp_try_complete_transition",
    "klp_try_switch_task",
    "klp_task_blocker",
    "klp_complete_transition",
    "klp_cancel_transition",
    "klp_reverse_transition",
    "klp_force_transition",
    "klp_update_patch_state",
    "klp_copy_process",
    "klp_sched_try_switch",
    "klp_cond_resched",
    "klp_transition_work_fn",
    "klp_transition_fast_forward",
    "SIGNALS_TIMEOUT",
]

SIGNALS_TIMEOUT = 15

RetryState = tuple[object, ...]
"""What _retry_state() compares between two signal periods (equality only)."""

_WARN_SITES = {
    "complete_task": "kernel/livepatch/transition.c:132 klp_complete_transition+0x1d4/0x2f0",
    "complete_idle": "kernel/livepatch/transition.c:139 klp_complete_transition+0x248/0x2f0",
    "cancel": "kernel/livepatch/transition.c:167 klp_cancel_transition+0x53/0x60",
    "try_complete": "kernel/livepatch/transition.c:458 klp_try_complete_transition+0x2ba/0x2e0",
    "start": "kernel/livepatch/transition.c:535 klp_start_transition+0x12d/0x140",
    "init_target": "kernel/livepatch/transition.c:581 klp_init_transition+0x1a2/0x1b0",
    "init_task": "kernel/livepatch/transition.c:600 klp_init_transition+0x15f/0x1b0",
    "init_idle": "kernel/livepatch/transition.c:610 klp_init_transition+0x166/0x1b0",
}
"""transition.c's WARN_ON_ONCE() sites, where Debian's 6.12.117 build has
them (its __bug_table entry against kallsyms)."""


def _warn_on_once(klp: Klp, condition: bool, site: str) -> bool:
    """WARN_ON_ONCE(condition) at *site*: a splat the first time it holds."""
    if condition:
        klp.kernel.warn("", _WARN_SITES[site], once_key=_WARN_SITES[site])
    return condition


def _state_name(state: int) -> str:
    return "patching" if state == KLP_TRANSITION_PATCHED else "unpatching"


def _event(klp: Klp, phase: TransitionPhase, when: When, patch: KlpPatch, target: int) -> None:
    """A transition step; *target*: where the transition goes (for a
    reversal, the new direction)."""
    klp.emit(TransitionEvent(phase, when, patch.name, TransitionTarget(target)))


def klp_update_patch_state(klp: Klp, task: Task, how: str = "kernel-exit") -> None:
    """Switch *task* if it has TIF_PATCH_PENDING (kernel exit, idle loop, force)."""
    if task.patch_pending:
        task.patch_pending = False
        task.patch_state = klp.target_state
        klp.emit(TaskSwitched(task.pid, task.comm, task.patch_state, how))


def klp_copy_process(klp: Klp, parent: Task, child: Task) -> None:
    """The child inherits the patched state of the parent."""
    child.patch_pending = parent.patch_pending
    child.patch_state = parent.patch_state
    if klp.transition_patch is not None:
        klp.emit(TaskSwitched(child.pid, child.comm, child.patch_state, "fork"))


def klp_cond_resched(klp: Klp, task: Task) -> None:
    """Before 6.16: cond_resched() of a task with TIF_PATCH_PENDING tries to
    switch it (a stack check of itself)."""
    if klp.sched_try_switch_key and task.patch_pending:
        klp_try_switch_task(klp, task)


def klp_sched_try_switch(klp: Klp, task: Task) -> None:
    """__klp_sched_try_switch(): a freezable kthread passing __schedule()."""
    if klp.sched_try_switch_key and task.freezable and task.patch_pending:
        klp_try_switch_task(klp, task)


def _forbidden_functions(klp: Klp) -> dict[Symbol, KlpFunc]:
    """The code no task may be inside to switch: {function: klp_func}.

    klp_check_stack_func(): unpatching forbids the patch's new code;
    patching forbids what runs now, i.e. the entry below on func_stack or
    the original function.
    """
    patch = klp.transition_patch
    assert patch is not None  # called only during a transition
    forbidden: dict[Symbol, KlpFunc] = {}
    for obj in patch.obj_list:
        if not obj.patched:
            continue
        for func in obj.func_list:
            # A patched object's funcs are resolved: klp_init_object_loaded().
            assert func.old_func is not None and func.old_name is not None
            if klp.target_state == KLP_TRANSITION_UNPATCHED:
                code = func.new_func
            else:
                stack = klp.ops[func.old_func].func_stack
                i = stack.index(func)
                code = stack[i + 1].new_func if i + 1 < len(stack) else func.old_func
            assert code is not None
            forbidden.setdefault(code, func)
    return forbidden


def _check_stack(
    klp: Klp, task: Task, forbidden: dict[Symbol, KlpFunc]
) -> tuple[int, tuple[Symbol, KlpFunc] | None]:
    """klp_check_stack(): the first func, in patch order, whose code is on
    the stack (the dict keeps patch order)."""
    if not task.reliable:
        return -EINVAL, None
    frames = task.stack
    if not frames or forbidden.keys().isdisjoint(frames):
        return 0, None
    on_stack = set(frames)
    for code, func in forbidden.items():
        if code in on_stack:
            return -EADDRINUSE, (code, func)
    return 0, None


def klp_try_switch_task(
    klp: Klp,
    task: Task,
    forbidden: dict[Symbol, KlpFunc] | None = None,
    blockers: list[Blocker] | None = None,
) -> bool:
    """Try to switch one task; True if it is now in the target state. The
    model also appends why not to *blockers* (for TransitionBlocked)."""
    if task.patch_state == klp.target_state:
        return True
    if not klp.reliable_stack:
        if blockers is not None:
            blockers.append(Blocker(task.pid, task.comm, "no-reliable-stacktrace"))
        return False
    sched = klp.kernel.sched
    # klp_check_and_switch_task(), with the task pinned by task_call_func()
    if task is not sched.current and sched.task_curr(task):
        ret, found = -EBUSY, None
    else:
        if forbidden is None:
            forbidden = _forbidden_functions(klp)
        ret, found = _check_stack(klp, task, forbidden)
        if ret == 0:
            task.patch_pending = False
            task.patch_state = klp.target_state
            klp.emit(TaskSwitched(task.pid, task.comm, task.patch_state, "stack-check"))
            return True
    fn = "klp_try_switch_task"
    if ret == -EBUSY:
        klp.msg("task_running", fn, task.comm, task.pid)
        why = "running"
    elif ret == -EINVAL:
        klp.msg("task_unreliable", fn, task.comm, task.pid)
        why = "unreliable"
    else:
        assert found is not None  # -EADDRINUSE names the function
        klp.msg("task_sleeping", fn, task.comm, task.pid, found[1].old_name)
        why = "sleeping"
    if blockers is not None:
        blockers.append(_blocker(task, why, found))
    return False


def klp_task_blocker(
    klp: Klp, task: Task, forbidden: dict[Symbol, KlpFunc] | None = None
) -> Blocker | None:
    """What keeps *task* from switching now, as klp_try_switch_task() would
    find it, without switching it or logging (klp_blocking); None if
    nothing does (it switches at the next try) or it has switched."""
    if klp.transition_patch is None or task.patch_state == klp.target_state:
        return None
    if not klp.reliable_stack:
        return Blocker(task.pid, task.comm, "no-reliable-stacktrace")
    sched = klp.kernel.sched
    if task is not sched.current and sched.task_curr(task):
        return _blocker(task, "running", None)
    ret, found = _check_stack(klp, task, forbidden or _forbidden_functions(klp))
    if ret == -EINVAL:
        return _blocker(task, "unreliable", None)
    if ret == -EADDRINUSE:
        return _blocker(task, "sleeping", found)
    return None


def _blocker(task: Task, why: str, found: tuple[Symbol, KlpFunc] | None) -> Blocker:
    if found is None:
        return Blocker(task.pid, task.comm, why)
    code, func = found
    obj = func.obj
    assert obj is not None and func.old_name is not None  # an initialised func
    label = function_label(obj.name, func.old_name, func.old_sympos)
    return Blocker(task.pid, task.comm, why, label, f"{code.owner.name}:{code.name}", func.nop)


def klp_send_signals(klp: Klp) -> None:
    """Wake kthreads and send fake signals to user tasks still pending."""
    if klp.signals_cnt == SIGNALS_TIMEOUT:
        klp.msg("signaling")
    sched = klp.kernel.sched
    for task in list(sched.tasks.values()):
        if not task.patch_pending:
            continue
        if task.is_kthread:
            sched.wake_up_state(task)
        else:
            sched.set_notify_signal(task)


def klp_try_complete_transition(klp: Klp) -> bool:
    """Try to switch every task; complete the transition if all switched."""
    _warn_on_once(klp, klp.target_state == KLP_TRANSITION_IDLE, "try_complete")
    sched = klp.kernel.sched
    forbidden = _forbidden_functions(klp)
    complete = True
    target = klp.target_state
    blockers: list[Blocker] = []
    for task in sched.tasks.values():
        if task.patch_state != target and not klp_try_switch_task(klp, task, forbidden, blockers):
            complete = False
    for cpu, idle in enumerate(sched.idle):
        if sched.cpu_online[cpu]:
            if not klp_try_switch_task(klp, idle, forbidden, blockers):
                complete = False
                sched.wake_up_if_idle(cpu)
        elif idle.patch_state != target:
            idle.patch_pending = False
            idle.patch_state = target
    if not complete:
        patch = klp.transition_patch
        assert patch is not None  # called only during a transition
        klp.emit(TransitionBlocked(patch.name, TransitionTarget(target), tuple(blockers)))
        if klp.signals_cnt and not klp.signals_cnt % SIGNALS_TIMEOUT:
            klp_send_signals(klp)
        klp.signals_cnt += 1
        clock = klp.kernel.clock
        clock.schedule_delayed_work(klp.transition_work, clock.round_jiffies_relative(NSEC_PER_SEC))
        return False
    klp.sched_try_switch_key = False
    patch = klp.transition_patch
    assert patch is not None  # called only during a transition
    klp_complete_transition(klp)
    if not patch.enabled:
        core.klp_free_patch_async(klp, patch)
    elif klp.policy.adds_nops(patch):
        core.klp_free_replaced_patches_async(klp, patch)
    return True


def klp_transition_work_fn(klp: Klp) -> None:
    """The delayed work that retries a stalled transition."""
    if klp.transition_patch is not None:
        if klp.signals_cnt % SIGNALS_TIMEOUT == 0:
            # What the system looks like at the start of a signal period,
            # for klp_transition_fast_forward().
            klp.retry_states = {
                klp.signals_cnt: (klp.kernel.clock.now, _retry_state(klp)),
            }
        klp_try_complete_transition(klp)


PERIOD_NS = SIGNALS_TIMEOUT * NSEC_PER_SEC
"""A stalled transition repeats itself every SIGNALS_TIMEOUT retries, one a second."""


def _retry_state(klp: Klp) -> RetryState:
    """Everything a retry of the transition reads or may change, but the
    clock and signals_cnt."""
    kernel = klp.kernel
    tasks = tuple(
        (
            t.pid,
            t.patch_state,
            t.patch_pending,
            t.signal_pending,
            t.woken,
            t.on_cpu,
            t.freezable,
            t.reliable,
            tuple(map(id, t.stack)),
        )
        for t in kernel.sched.all_tasks()
    )
    return (
        len(kernel.log.records),
        len(kernel.log.dyndbg.rules),
        klp.transition_seq,
        id(klp.transition_patch),
        klp.target_state,
        klp.sched_try_switch_key,
        tuple(kernel.sched.cpu_online),
        tasks,
    )


def klp_transition_fast_forward(klp: Klp, expires: int, horizon: int) -> int:
    """The model's shortcut for a transition that can never complete on its
    own (a task sleeps on a patched function): when the last full signal
    period, SIGNALS_TIMEOUT retries and one round of signals, changed
    nothing at all (no task switched, nothing logged), every later period
    will change nothing either, so the retries due before *horizon* are
    skipped a period at a time: signals_cnt moves on as they would have
    moved it, and the retry runs again (for real) at the first period that
    does not fit. The log is the one stepping through every retry gives."""
    if klp.transition_patch is None or klp.signals_cnt % SIGNALS_TIMEOUT:
        return expires
    seen = klp.retry_states.get(klp.signals_cnt - SIGNALS_TIMEOUT)
    if seen != (expires - PERIOD_NS, _retry_state(klp)):
        return expires
    periods = (horizon - expires) // PERIOD_NS
    if periods < 1:
        return expires
    klp.signals_cnt += periods * SIGNALS_TIMEOUT
    return expires + periods * PERIOD_NS


def klp_complete_transition(klp: Klp) -> None:
    """Finish the transition: tidy func_stacks, run post callbacks."""
    patch = klp.transition_patch
    assert patch is not None  # called only during a transition
    target = klp.target_state
    _event(klp, TransitionPhase.COMPLETE, When.BEFORE, patch, target)
    klp.msg("completing", patch.name, _state_name(target))
    if target == KLP_TRANSITION_PATCHED and klp.policy.adds_nops(patch):
        replaced = core.klp_unpatch_replaced_patches(klp, patch)
        core.klp_discard_nops(klp, patch)
        klp.emit(_replaced_event(klp, patch, replaced))
    if target == KLP_TRANSITION_UNPATCHED:
        klp_unpatch_objects(klp, patch)
    for obj in patch.obj_list:
        for func in obj.func_list:
            func.transition = False
    sched = klp.kernel.sched
    for task in sched.tasks.values():
        _warn_on_once(klp, task.patch_pending, "complete_task")
        task.patch_state = KLP_TRANSITION_IDLE
    for task in sched.idle:
        _warn_on_once(klp, task.patch_pending, "complete_idle")
        task.patch_state = KLP_TRANSITION_IDLE
    for obj in list(patch.obj_list):
        if not core.klp_is_object_loaded(obj):
            continue
        if target == KLP_TRANSITION_PATCHED:
            core.klp_post_patch_callback(obj)
        else:
            core.klp_post_unpatch_callback(obj)
    klp.msg("complete", patch.name, _state_name(target))
    klp.target_state = KLP_TRANSITION_IDLE
    klp.transition_patch = None
    _event(klp, TransitionPhase.COMPLETE, When.AFTER, patch, target)


def _replaced_event(klp: Klp, patch: KlpPatch, replaced: list[KlpPatch]) -> PatchesReplaced:
    """What the replace did to each function of the replaced patches, read
    off the func_stacks once they are unpatched and the nops discarded."""
    reverted: list[str] = []
    repatched: list[str] = []
    kept: list[tuple[str, str]] = []
    seen: set[str] = set()
    for old in replaced:
        for obj in old.obj_list:
            for func in obj.func_list:
                if func.old_name is None or func.nop:
                    continue
                label = function_label(obj.name, func.old_name, func.old_sympos)
                if label in seen:
                    continue
                seen.add(label)
                ops = klp.ops.get(func.old_func) if func.old_func is not None else None
                top = ops.func_stack[0] if ops is not None and ops.func_stack else None
                owner = top.obj.patch if top is not None and top.obj is not None else None
                if top is None or owner is None:
                    reverted.append(label)
                elif owner is patch:
                    repatched.append(label)
                else:
                    kept.append((label, owner.name))
    return PatchesReplaced(
        patch.name, tuple(p.name for p in replaced), tuple(reverted), tuple(repatched), tuple(kept)
    )


def klp_cancel_transition(klp: Klp) -> None:
    """Undo a patching transition that never started (an enable error)."""
    if _warn_on_once(klp, klp.target_state != KLP_TRANSITION_PATCHED, "cancel"):
        return
    assert klp.transition_patch is not None  # called only during a transition
    klp.msg("canceling", klp.transition_patch.name)
    klp.target_state = KLP_TRANSITION_UNPATCHED
    klp_complete_transition(klp)


def klp_init_transition(klp: Klp, patch: KlpPatch, state: int) -> None:
    """Set every task to the initial state and mark the patch's funcs."""
    _event(klp, TransitionPhase.INIT, When.BEFORE, patch, state)
    _warn_on_once(klp, klp.target_state != KLP_TRANSITION_IDLE, "init_target")
    klp.transition_patch = patch
    klp.target_state = state
    klp.msg("initializing", patch.name, _state_name(state))
    initial = (
        KLP_TRANSITION_UNPATCHED if state == KLP_TRANSITION_PATCHED else KLP_TRANSITION_PATCHED
    )
    sched = klp.kernel.sched
    for task in sched.tasks.values():
        _warn_on_once(klp, task.patch_state != KLP_TRANSITION_IDLE, "init_task")
        task.patch_state = initial
    for task in sched.idle:
        _warn_on_once(klp, task.patch_state != KLP_TRANSITION_IDLE, "init_idle")
        task.patch_state = initial
    for obj in patch.obj_list:
        for func in obj.func_list:
            func.transition = True


def klp_start_transition(klp: Klp) -> None:
    """Flag every task that still has to switch."""
    _warn_on_once(klp, klp.target_state == KLP_TRANSITION_IDLE, "start")
    patch = klp.transition_patch
    assert patch is not None  # called only during a transition
    klp.msg("starting", patch.name, _state_name(klp.target_state))
    target = klp.target_state
    for task in klp.kernel.sched.all_tasks():
        if task.patch_state != target:
            task.patch_pending = True
    klp.sched_try_switch_key = True
    klp.signals_cnt = 0
    _event(klp, TransitionPhase.START, When.AFTER, patch, target)


def klp_reverse_transition(klp: Klp) -> None:
    """Turn the running transition around (``enabled`` written mid-way)."""
    patch = klp.transition_patch
    assert patch is not None  # called only during a transition
    _event(klp, TransitionPhase.REVERSE, When.BEFORE, patch, 1 - klp.target_state)
    klp.msg(
        "reversing",
        patch.name,
        "patching to unpatching"
        if klp.target_state == KLP_TRANSITION_PATCHED
        else "unpatching to patching",
    )
    for task in klp.kernel.sched.all_tasks():
        task.patch_pending = False
    patch.enabled = not patch.enabled
    klp.target_state = (
        KLP_TRANSITION_UNPATCHED
        if klp.target_state == KLP_TRANSITION_PATCHED
        else KLP_TRANSITION_PATCHED
    )
    klp_start_transition(klp)


def klp_force_transition(klp: Klp) -> None:
    """Switch every task now, safe or not; the patches involved stay pinned."""
    klp.msg("forcing")
    for task in klp.kernel.sched.all_tasks():
        klp_update_patch_state(klp, task, "forced")
    tp = klp.transition_patch
    assert tp is not None  # called only during a transition
    if klp.target_state == KLP_TRANSITION_UNPATCHED:
        tp.forced = True
        pinned = [tp]
    else:
        pinned = [p for p in klp.patches if p is not tp and klp.policy.force_marks(tp, p)]
        for patch in pinned:
            patch.forced = True
    target = TransitionTarget(klp.target_state)
    klp.emit(TransitionForced(tp.name, target, tuple(p.name for p in pinned)))
