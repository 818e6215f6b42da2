"""Patching functions through ftrace: klp_ops, func_stack and the handler.

Mirrors kernel/livepatch/patch.c. One klp_ops exists per patched original
function; its func_stack holds the klp_funcs of every patch on that
function, newest first, and its single ftrace_ops redirects calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from klpsim.kernel.errno import EINVAL
from klpsim.livepatch.events import FuncStackChanged, StackEntry, function_label
from klpsim.livepatch.structs import KLP_TRANSITION_UNPATCHED, KlpFunc, KlpObject
from klpsim.trace.ftrace import (
    FTRACE_OPS_FL_DYNAMIC,
    FTRACE_OPS_FL_IPMODIFY,
    FTRACE_OPS_FL_PERMANENT,
    FtraceOps,
)

if TYPE_CHECKING:
    from klpsim.kernel.symbols import Regs, Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.livepatch.core import Klp
    from klpsim.livepatch.structs import KlpPatch

__all__ = [
    "KlpOps",
    "klp_find_ops",
    "klp_ftrace_handler",
    "klp_patch_object",
    "klp_unpatch_object",
    "klp_unpatch_objects",
    "klp_unpatch_objects_dynamic",
    "klp_func_for_task",
]


class KlpOps:
    """``struct klp_ops``: the func_stack of one original function."""

    __slots__ = ("old_func", "func_stack", "fops")

    def __init__(self, old_func: Symbol, fops: FtraceOps):
        self.old_func = old_func
        self.func_stack: list[KlpFunc] = []  # index 0 is the top (newest)
        self.fops = fops


def klp_find_ops(klp: Klp, old_func: Symbol) -> KlpOps | None:
    return klp.ops.get(old_func)


def klp_func_for_task(ops: KlpOps, patch_state: int) -> KlpFunc | None:
    """The func_stack entry whose code a task in *patch_state* runs.

    klp_ftrace_handler(): the top entry, except that during a transition an
    unpatched task uses the entry below it (None: the original code).
    """
    stack = ops.func_stack
    func = stack[0]
    if func.transition and patch_state == KLP_TRANSITION_UNPATCHED:
        return stack[1] if len(stack) > 1 else None
    return func


def klp_ftrace_handler(task: Task, ip: Symbol, fops: FtraceOps, regs: Regs) -> None:
    """klp_ftrace_handler(): redirect the call to the chosen new_func."""
    ops = cast("KlpOps", fops.private)  # container_of(fops, struct klp_ops, fops)
    if not ops.func_stack:
        return
    func = klp_func_for_task(ops, task.patch_state)
    if func is None or func.nop:
        return
    new_func = func.new_func
    assert new_func is not None  # klp_init_func() refuses a func without one
    regs.ip = new_func


def _msg(klp: Klp, key: str, *args: object) -> None:
    klp.msg(key, *args)


def klp_patch_func(klp: Klp, func: KlpFunc) -> int:
    """klp_patch_func(): push *func* on its function's stack."""
    if func.old_func is None or func.patched:
        return -EINVAL
    ops = klp.ops.get(func.old_func)
    if ops is None:
        ftrace = klp.ftrace
        if not func.old_func.ftrace_loc:
            _msg(klp, "no_ftrace_location", func.old_name)
            return -EINVAL
        fops = FtraceOps(
            f"klp_ops:{func.old_name}",
            klp_ftrace_handler,
            FTRACE_OPS_FL_DYNAMIC | FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT,
        )
        ops = KlpOps(func.old_func, fops)
        fops.private = ops
        klp.ops[func.old_func] = ops
        ops.func_stack.insert(0, func)
        ret = ftrace.ftrace_set_filter_ip(fops, func.old_func)
        if ret:
            _msg(klp, "set_filter_failed", func.old_name, ret)
            del klp.ops[func.old_func]
            return ret
        ret = ftrace.register_ftrace_function(fops)
        if ret:
            _msg(klp, "register_failed", func.old_name, ret)
            ftrace.ftrace_set_filter_ip(fops, func.old_func, remove=True)
            del klp.ops[func.old_func]
            return ret
    else:
        ops.func_stack.insert(0, func)
    func.patched = True
    _stack_changed(klp, func, ops)
    return 0


def _stack_changed(klp: Klp, func: KlpFunc, ops: KlpOps) -> None:
    """Tell the event log what the func_stack of *func*'s function is now."""
    obj = func.obj
    assert obj is not None and func.old_name is not None  # an initialised func
    stack = tuple(
        StackEntry(f.obj.patch.name if f.obj and f.obj.patch else "?", f.nop)
        for f in ops.func_stack
    )
    klp.emit(FuncStackChanged(function_label(obj.name, func.old_name, func.old_sympos), stack))


def klp_unpatch_func(klp: Klp, func: KlpFunc) -> None:
    """klp_unpatch_func(): take *func* off its stack (possibly from the middle)."""
    old_func = func.old_func
    assert old_func is not None  # a patched func is resolved
    ops = klp.ops[old_func]
    if len(ops.func_stack) == 1:
        klp.ftrace.unregister_ftrace_function(ops.fops)
        klp.ftrace.ftrace_set_filter_ip(ops.fops, old_func, remove=True)
        del klp.ops[old_func]
    ops.func_stack.remove(func)
    func.patched = False
    _stack_changed(klp, func, ops)


def klp_patch_object(klp: Klp, obj: KlpObject) -> int:
    if obj.patched:
        return -EINVAL
    for func in obj.func_list:
        ret = klp_patch_func(klp, func)
        if ret:
            klp_unpatch_object(klp, obj)
            return ret
    obj.patched = True
    return 0


def __klp_unpatch_object(klp: Klp, obj: KlpObject, nops_only: bool) -> None:
    for func in obj.func_list:
        if nops_only and not func.nop:
            continue
        if func.patched:
            klp_unpatch_func(klp, func)
    if obj.dynamic or not nops_only:
        obj.patched = False


def klp_unpatch_object(klp: Klp, obj: KlpObject) -> None:
    __klp_unpatch_object(klp, obj, False)


def klp_unpatch_objects(klp: Klp, patch: KlpPatch) -> None:
    for obj in patch.obj_list:
        if obj.patched:
            __klp_unpatch_object(klp, obj, False)


def klp_unpatch_objects_dynamic(klp: Klp, patch: KlpPatch) -> None:
    for obj in patch.obj_list:
        if obj.patched:
            __klp_unpatch_object(klp, obj, True)
