"""The livepatch core: patch life cycle, sysfs, symbols, module hooks.

Mirrors kernel/livepatch/core.c. The :class:`Klp` object holds what core.c
keeps in globals (klp_mutex is implicit: the model is single-threaded);
every other function takes it as its first argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from klpsim.kernel.clock import DelayedWork
from klpsim.kernel.errno import EBUSY, EINVAL, ENODEV
from klpsim.kernel.module import MODULE_NAME_LEN, MODULE_STATE_COMING, MODULE_STATE_GOING
from klpsim.kernel.tracepoint import Tracepoint
from klpsim.livepatch import transition
from klpsim.livepatch.events import (
    Conflict,
    KlpEvent,
    ModuleRefused,
    PatchEnabled,
    PatchFreed,
    PatchRefused,
    RefusalReason,
    RefusalRule,
    TransitionEvent,
    Unresolved,
    When,
)
from klpsim.livepatch.messages import KLP_PREFIX
from klpsim.livepatch.patch import (
    klp_patch_object,
    klp_unpatch_object,
    klp_unpatch_objects,
    klp_unpatch_objects_dynamic,
)
from klpsim.livepatch.shadow import ShadowHash
from klpsim.livepatch.state import klp_patch_conflict
from klpsim.livepatch.structs import (
    KLP_TRANSITION_IDLE,
    KLP_TRANSITION_PATCHED,
    KLP_TRANSITION_UNPATCHED,
    KlpFunc,
    KlpObject,
    KlpPatch,
)

if TYPE_CHECKING:
    from klpsim.kernel.fs import Inode, Show, Store
    from klpsim.kernel.machine import Kernel
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Symbol
    from klpsim.kernel.tasks import Task
    from klpsim.livepatch.patch import KlpOps
    from klpsim.livepatch.profiles import PatchAttr, Profile
    from klpsim.trace.ftrace import Ftrace

__all__ = ["Klp", "klp_enable_patch", "klp_is_object_loaded", "klp_find_func"]

KSYM_NAME_LEN = 512


class Klp:
    """The globals of kernel/livepatch for one simulated kernel."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace, profile: Profile):
        self.kernel = kernel
        self.ftrace = ftrace
        self.profile = profile
        self.policy = profile.policy
        self.patches: list[KlpPatch] = []  # klp_patches
        self.transition_patch: KlpPatch | None = None
        self.target_state = KLP_TRANSITION_IDLE
        self.signals_cnt = 0
        self.ops: dict[Symbol, KlpOps] = {}  # klp_ops, keyed by old_func
        self.sched_try_switch_key = False
        self.reliable_stack = kernel.has_config("HAVE_RELIABLE_STACKTRACE")
        self.transition_work = DelayedWork(
            lambda: transition.klp_transition_work_fn(self),
            lambda expires, horizon: transition.klp_transition_fast_forward(self, expires, horizon),
        )
        # signals_cnt -> (time, state) at a signal period's start: klp_transition_work_fn()
        self.retry_states: dict[int, tuple[int, transition.RetryState]] = {}
        self.shadow = ShadowHash(self)
        self.freed: list[KlpPatch] = []  # patches whose free work has run
        self.all_patches: list[KlpPatch] = []  # every patch klp_enable_patch() took on
        self.transition_seq = 0  # counts transition steps, for observers
        self.tp: Tracepoint[KlpEvent] = Tracepoint()  # see emit()
        # The func klp_find_object_symbol() last failed to resolve, for
        # PatchRefused: the kernel only logs the name.
        self.unresolved: Unresolved | None = None
        self._fmt_cache: dict[str, tuple[int, str, tuple[str, str] | None]] = {}
        self.root_kobj = kernel.fs.mkdir("/sys/kernel/livepatch")
        self._hook_into(kernel)

    def _hook_into(self, kernel: Kernel) -> None:
        kernel.modules.prepare_coming.append(lambda mod: klp_module_coming(self, mod))
        kernel.modules.after_going.insert(0, lambda mod: klp_module_going(self, mod))
        sched = kernel.sched
        sched.exit_to_user_mode.append(lambda t: transition.klp_update_patch_state(self, t))
        sched.idle_hooks.append(lambda t: transition.klp_update_patch_state(self, t))
        sched.fork_hooks.append(lambda p, c: transition.klp_copy_process(self, p, c))
        switch = self.profile.sched_switch
        if switch == "schedule":
            sched.schedule_hooks.append(lambda t: transition.klp_sched_try_switch(self, t))
        elif switch == "cond_resched":
            sched.cond_resched_hooks.append(lambda t: transition.klp_cond_resched(self, t))
        from klpsim.livepatch import shadow, state

        exports = kernel.exports
        exports["klp_enable_patch"] = lambda patch: klp_enable_patch(self, patch)
        exports["klp_replace_is_tag"] = self.policy.replace_is_tag
        exports["klp_get_state"] = state.klp_get_state
        exports["klp_get_prev_state"] = lambda id: state.klp_get_prev_state(self, id)
        for name in shadow.EXPORTED:
            exports[f"klp_shadow_{name}"] = getattr(self.shadow, name)

    def msg(self, key: str, *args: object) -> None:
        """printk() a catalogue message with the ``livepatch: `` prefix."""
        entry = self._fmt_cache.get(key)
        if entry is None:
            m = self.profile.message(key)
            fmt = m.fmt.replace("%lu", "%d").replace("%lx", "%x")
            entry = self._fmt_cache[key] = (m.level, fmt, m.site)
        level, fmt, site = entry
        log = self.kernel.log
        if site is not None and not log.dyndbg.enabled(*site):
            return
        log.printk(level, KLP_PREFIX + (fmt % args))

    def kernel_ptr(self, obj: object) -> str:
        """%p of *obj*: a hashed pointer, stable for the object's life."""
        return self.kernel.hashed_ptr(obj)

    def emit(self, event: KlpEvent) -> None:
        """Tell the probes of :attr:`tp` what happened (livepatch/events.py)."""
        if isinstance(event, TransitionEvent) and event.when is When.BEFORE:
            self.transition_seq += 1
        self.tp(event)

    @property
    def current(self) -> Task:
        return self.kernel.sched.current


# -- helpers -------------------------------------------------------------------


def klp_is_module(obj: KlpObject) -> bool:
    return obj.name is not None


def klp_is_object_loaded(obj: KlpObject) -> bool:
    return obj.name is None or obj.mod is not None


def klp_find_object(patch: KlpPatch, old_obj: KlpObject) -> KlpObject | None:
    for obj in patch.obj_list:
        if klp_is_module(old_obj):
            if klp_is_module(obj) and old_obj.name == obj.name:
                return obj
        elif not klp_is_module(obj):
            return obj
    return None


def klp_find_func(klp: Klp, obj: KlpObject, old_func: KlpFunc) -> KlpFunc | None:
    """A func of *obj* with the same name and position as *old_func*."""
    same_0_1 = klp.profile.sympos_0_eq_1
    for func in obj.func_list:
        if func.old_name != old_func.old_name:
            continue
        a, b = old_func.old_sympos, func.old_sympos
        if a == b or (same_0_1 and {a, b} == {0, 1}):
            return func
    return None


# -- callbacks (core.h) --------------------------------------------------------


def klp_pre_patch_callback(obj: KlpObject) -> int:
    cb = obj.callbacks
    ret = cb.pre_patch(obj) if cb.pre_patch else 0
    cb.post_unpatch_enabled = not ret
    return ret


def klp_post_patch_callback(obj: KlpObject) -> None:
    if obj.callbacks.post_patch:
        obj.callbacks.post_patch(obj)


def klp_pre_unpatch_callback(obj: KlpObject) -> None:
    if obj.callbacks.pre_unpatch:
        obj.callbacks.pre_unpatch(obj)


def klp_post_unpatch_callback(obj: KlpObject) -> None:
    cb = obj.callbacks
    if cb.post_unpatch_enabled and cb.post_unpatch:
        cb.post_unpatch(obj)
    cb.post_unpatch_enabled = False


# -- symbols ---------------------------------------------------------------------


def klp_find_object_symbol(
    klp: Klp, objname: str | None, name: str, sympos: int
) -> tuple[int, Symbol | None]:
    """(0, function) or (-EINVAL, None) with the kernel's error message."""
    count = 0
    found = None
    syms = klp.kernel.kallsyms.find(objname, name)
    for sym in syms:
        found = sym
        count += 1
        if (sympos and count == sympos) or (not sympos and count > 1):
            break
    if found is None:
        klp.msg("symbol_not_found", name)
        kind = RefusalRule.SYMBOL_NOT_FOUND
    elif count > 1 and sympos == 0:
        klp.msg("symbol_ambiguous", name, objname if objname else "(null)")
        kind = RefusalRule.SYMBOL_AMBIGUOUS
    elif sympos and sympos != count:
        klp.msg("sympos_not_found", sympos, name, objname or "vmlinux")
        kind = RefusalRule.SYMPOS_NOT_FOUND
    else:
        return 0, found
    klp.unresolved = Unresolved(kind, objname, name, sympos, len(syms))
    return -EINVAL, None


def klp_find_object_module(klp: Klp, obj: KlpObject) -> None:
    if obj.name is None:  # !klp_is_module(obj)
        return
    mod = klp.kernel.modules.find_module(obj.name)
    # Only a module whose klp_module_coming() ran and whose
    # klp_module_going() did not is "loaded" for livepatch.
    if mod is not None and mod.klp_alive:
        obj.mod = mod


# -- sysfs -------------------------------------------------------------------------


def enabled_store(klp: Klp, patch: KlpPatch, buf: str) -> int:
    enabled = klp.kernel.kstrtobool(buf)
    if not isinstance(enabled, bool):
        return -EINVAL
    if patch.enabled == enabled:
        ret = -EINVAL  # already in the requested state
    elif patch is klp.transition_patch:
        transition.klp_reverse_transition(klp)
        ret = 0
    elif not enabled:
        ret = __klp_disable_patch(klp, patch)
    else:
        ret = -EINVAL  # a disabled patch is never enabled again
    return ret or len(buf)


def force_store(klp: Klp, patch: KlpPatch, buf: str) -> int:
    val = klp.kernel.kstrtobool(buf)
    if not isinstance(val, bool):
        return -EINVAL
    if not val:
        return len(buf)
    if patch is not klp.transition_patch:
        return -EINVAL
    transition.klp_force_transition(klp)
    return len(buf)


def stack_order(klp: Klp, patch: KlpPatch) -> int:
    """stack_order_show(): count patches up to this one (all of them if it
    has already left klp_patches)."""
    for i, p in enumerate(klp.patches, 1):
        if p is patch:
            return i
    return len(klp.patches)


PATCH_ATTRS: dict[str, PatchAttr] = {
    # name: (mode, show(klp, patch), store(klp, patch, buf))
    "enabled": (0o644, lambda klp, p: f"{int(p.enabled)}\n", enabled_store),
    "transition": (0o444, lambda klp, p: f"{int(p is klp.transition_patch)}\n", None),
    "force": (0o200, None, force_store),
    "replace": (0o444, lambda klp, p: f"{int(p.replace)}\n", None),
    "stack_order": (0o444, lambda klp, p: f"{stack_order(klp, p)}\n", None),
}


def _kobject_add(klp: Klp, parent: Inode, name: str) -> Inode | int:
    node = klp.kernel.fs.add_dir(parent, name)
    if isinstance(node, int):
        log = klp.kernel.log
        log.printk(4, f"sysfs: cannot create duplicate filename '{parent.path()[4:]}/{name}'")
        log.printk(
            3,
            f"kobject: kobject_add_internal failed for {name} with -EEXIST, don't "
            "try to register things with the same name in the same directory.",
        )
    return node


def _attr_show(klp: Klp, patch: KlpPatch, show: Callable[[Klp, KlpPatch], str]) -> Show:
    return lambda: show(klp, patch)


def _attr_store(klp: Klp, patch: KlpPatch, store: Callable[[Klp, KlpPatch, str], int]) -> Store:
    return lambda buf: store(klp, patch, buf)


def _patch_sysfs(klp: Klp, patch: KlpPatch) -> int:
    node = _kobject_add(klp, klp.root_kobj, patch.name)
    if isinstance(node, int):
        return node
    fs = klp.kernel.fs
    attrs = dict(PATCH_ATTRS, **klp.profile.extra_patch_attrs)
    for name in klp.profile.patch_attrs:
        mode, show, store = attrs[name]
        fs.add_file(
            node,
            name,
            mode,
            _attr_show(klp, patch, show) if show else None,
            _attr_store(klp, patch, store) if store else None,
        )
    patch.kobj = node
    return 0


# -- init --------------------------------------------------------------------------


def klp_init_object_early(patch: KlpPatch, obj: KlpObject) -> None:
    obj.func_list = []
    obj.patch = patch
    patch.obj_list.append(obj)


def klp_init_func_early(obj: KlpObject, func: KlpFunc) -> None:
    func.obj = obj
    obj.func_list.append(func)


def klp_init_patch_early(patch: KlpPatch) -> None:
    patch.obj_list = []
    patch.enabled = False
    patch.forced = False
    assert patch.objs is not None  # refused by klp_enable_patch()
    for obj in patch.objs:
        klp_init_object_early(patch, obj)
        assert obj.funcs is not None  # refused by klp_enable_patch()
        for func in obj.funcs:
            klp_init_func_early(obj, func)


def klp_init_func(klp: Klp, obj: KlpObject, func: KlpFunc) -> int:
    if not func.old_name:
        return -EINVAL
    # NOPs get the address later; the patched module might not be loaded yet.
    if func.new_func is None and not func.nop:
        return -EINVAL
    if len(func.old_name) >= KSYM_NAME_LEN:
        return -EINVAL
    func.patched = False
    func.transition = False
    assert obj.kobj is not None  # klp_init_object() made it
    node = _kobject_add(klp, obj.kobj, f"{func.old_name},{func.old_sympos or 1}")
    if isinstance(node, int):
        return node
    func.kobj = node
    return 0


def klp_init_object_loaded(klp: Klp, patch: KlpPatch, obj: KlpObject) -> int:
    for func in obj.func_list:
        assert func.old_name is not None  # klp_init_func() refuses a NULL one
        ret, sym = klp_find_object_symbol(klp, obj.name, func.old_name, func.old_sympos)
        if ret:
            return ret
        func.old_func = sym
        if func.nop:
            func.new_func = func.old_func
    return 0


def klp_init_object(klp: Klp, patch: KlpPatch, obj: KlpObject) -> int:
    if obj.name is not None and len(obj.name) >= MODULE_NAME_LEN:  # klp_is_module(obj)
        return -EINVAL
    obj.patched = False
    obj.mod = None
    klp_find_object_module(klp, obj)
    assert patch.kobj is not None  # _patch_sysfs() made it
    node = _kobject_add(klp, patch.kobj, obj.display_name)
    if isinstance(node, int):
        return node
    obj.kobj = node
    if klp.profile.object_patched_attr:
        klp.kernel.fs.add_file(node, "patched", 0o444, lambda: f"{int(obj.patched)}\n")
    for func in obj.func_list:
        ret = klp_init_func(klp, obj, func)
        if ret:
            return ret
    if klp_is_object_loaded(obj):
        return klp_init_object_loaded(klp, patch, obj)
    return 0


def klp_init_patch(klp: Klp, patch: KlpPatch) -> int:
    ret = _patch_sysfs(klp, patch)
    if ret:
        return ret
    if klp.policy.adds_nops(patch):
        ret = klp_add_nops(klp, patch)
        if ret:
            return ret
    for obj in patch.obj_list:
        ret = klp_init_object(klp, patch, obj)
        if ret:
            return ret
    klp.patches.append(patch)
    return 0


# -- atomic replace ----------------------------------------------------------------


def klp_add_object_nops(klp: Klp, patch: KlpPatch, old_obj: KlpObject) -> int:
    obj = klp_find_object(patch, old_obj)
    if obj is None:
        obj = KlpObject(old_obj.name, [])
        obj.dynamic = True
        klp_init_object_early(patch, obj)
    for old_func in old_obj.func_list:
        if klp_find_func(klp, obj, old_func):
            continue
        func = KlpFunc(old_func.old_name, None, old_func.old_sympos)
        func.nop = True
        klp_init_func_early(obj, func)
    return 0


def klp_add_nops(klp: Klp, patch: KlpPatch) -> int:
    """Add nops for every function of the patches *patch* replaces."""
    for old_patch in klp.patches:
        if not klp.policy.nops_for(patch, old_patch):
            continue
        for old_obj in old_patch.obj_list:
            ret = klp_add_object_nops(klp, patch, old_obj)
            if ret:
                return ret
    return 0


def klp_unpatch_replaced_patches(klp: Klp, new_patch: KlpPatch) -> list[KlpPatch]:
    """Unpatch the patches *new_patch* replaces; the model returns them."""
    replaced: list[KlpPatch] = []
    for old_patch in klp.patches:
        if old_patch is new_patch:
            break
        if not klp.policy.replaces(new_patch, old_patch):
            continue
        old_patch.enabled = False
        klp_unpatch_objects(klp, old_patch)
        replaced.append(old_patch)
    return replaced


def __klp_free_objects(klp: Klp, patch: KlpPatch, nops_only: bool) -> None:
    fs = klp.kernel.fs
    for obj in list(patch.obj_list):
        for func in list(obj.func_list):
            if nops_only and not func.nop:
                continue
            obj.func_list.remove(func)
            if func.kobj is not None:
                fs.remove(func.kobj)
        if nops_only and not obj.dynamic:
            continue
        patch.obj_list.remove(obj)
        if obj.kobj is not None:
            fs.remove(obj.kobj)


def klp_discard_nops(klp: Klp, new_patch: KlpPatch) -> None:
    klp_unpatch_objects_dynamic(klp, new_patch)
    __klp_free_objects(klp, new_patch, True)


# -- freeing -------------------------------------------------------------------


def klp_free_patch_start(klp: Klp, patch: KlpPatch) -> None:
    if patch in klp.patches:
        klp.patches.remove(patch)
    __klp_free_objects(klp, patch, False)


def klp_free_patch_finish(klp: Klp, patch: KlpPatch) -> None:
    if patch.kobj is not None:
        klp.kernel.fs.remove(patch.kobj)
        patch.kobj = None
    if not patch.forced:
        patch.mod.module_put("livepatch")
    patch.freed = True
    klp.emit(PatchFreed(patch.name))


def klp_free_patch_work_fn(klp: Klp, patch: KlpPatch) -> None:
    klp_free_patch_finish(klp, patch)
    klp.freed.append(patch)


def klp_free_patch_async(klp: Klp, patch: KlpPatch) -> None:
    """Free a patch from a work item: its sysfs store may be the caller."""
    klp_free_patch_start(klp, patch)
    work = patch.free_work = DelayedWork(lambda: klp_free_patch_work_fn(klp, patch))
    klp.kernel.clock.schedule_work(work)


def klp_free_replaced_patches_async(klp: Klp, new_patch: KlpPatch) -> None:
    for old_patch in list(klp.patches):
        if old_patch is new_patch:
            return
        if not klp.policy.replaces(new_patch, old_patch):
            continue
        klp_free_patch_async(klp, old_patch)


# -- enable / disable --------------------------------------------------------------


def __klp_disable_patch(klp: Klp, patch: KlpPatch) -> int:
    if not patch.enabled:
        return -EINVAL
    if klp.transition_patch is not None:
        return -EBUSY
    transition.klp_init_transition(klp, patch, KLP_TRANSITION_UNPATCHED)
    for obj in patch.obj_list:
        if obj.patched:
            klp_pre_unpatch_callback(obj)
    transition.klp_start_transition(klp)
    patch.enabled = False
    transition.klp_try_complete_transition(klp)
    return 0


def __klp_enable_patch(klp: Klp, patch: KlpPatch) -> int:
    if klp.transition_patch is not None:
        return -EBUSY
    if patch.enabled:
        return -EINVAL
    klp.msg("enabling", patch.name)
    transition.klp_init_transition(klp, patch, KLP_TRANSITION_PATCHED)
    for obj in patch.obj_list:
        if not klp_is_object_loaded(obj):
            continue
        ret = klp_pre_patch_callback(obj)
        if ret:
            klp.msg("pre_patch_failed", obj.display_name)
            break
        ret = klp_patch_object(klp, obj)
        if ret:
            klp.msg("patch_object_failed", obj.display_name)
            break
    else:
        transition.klp_start_transition(klp)
        patch.enabled = True
        transition.klp_try_complete_transition(klp)
        return 0
    klp.msg("enable_failed", patch.name)
    transition.klp_cancel_transition(klp)
    return ret


def klp_enable_patch(klp: Klp, patch: KlpPatch) -> int:
    """Register and enable a livepatch; called from the patch module's init."""
    if patch is None or patch.mod is None or patch.objs is None:
        return -EINVAL
    klp.unresolved = None
    ret, reason, conflict = _klp_enable_patch(klp, patch)
    policy = klp.policy
    replace = patch.replace if "replace" in policy.patch_fields else None
    if ret:
        unresolved = klp.unresolved if reason is RefusalReason.INIT else None
        klp.emit(
            PatchRefused(
                patch.name, patch.mod.name, ret, reason, conflict, policy.set_of(patch), unresolved
            )
        )
    else:
        klp.emit(PatchEnabled(patch.name, patch.mod.name, policy.set_of(patch), replace))
    return ret


def _klp_enable_patch(klp: Klp, patch: KlpPatch) -> tuple[int, RefusalReason, Conflict | None]:
    """klp_enable_patch() itself; the model also says which check failed
    and, for a conflict, why (for the notes)."""
    assert patch.objs is not None  # checked by klp_enable_patch()
    for obj in patch.objs:
        if obj.funcs is None:
            return -EINVAL, RefusalReason.INVALID, None
    if not patch.mod.klp:
        klp.msg("not_livepatch", patch.mod.name)
        return -EINVAL, RefusalReason.NOT_LIVEPATCH, None
    if klp.root_kobj is None:
        return -ENODEV, RefusalReason.INVALID, None
    if not klp.reliable_stack:
        klp.msg("no_reliable_stack")
        klp.msg("may_never_complete")
    conflict = klp_patch_conflict(klp, patch)
    if conflict is not None:
        klp.msg("incompatible", patch.name)
        return -EINVAL, RefusalReason.INCOMPATIBLE, conflict
    if not patch.mod.try_module_get("livepatch"):
        return -ENODEV, RefusalReason.NO_MODULE_REFERENCE, None
    klp.all_patches.append(patch)
    klp_init_patch_early(patch)
    ret = klp_init_patch(klp, patch)
    reason = RefusalReason.INIT
    busy = klp.transition_patch
    if not ret:
        ret = __klp_enable_patch(klp, patch)
        if not ret:
            return 0, reason, None
        reason = RefusalReason.ENABLE
    if ret == -EBUSY and busy is not None:
        # __klp_enable_patch(): another patch is in transition; the kernel
        # logs nothing about it.
        conflict = Conflict(
            "one transition at a time: wait until it completes",
            busy.name,
            klp.policy.set_of(busy),
        )
    klp_free_patch_start(klp, patch)
    klp_free_patch_finish(klp, patch)
    return ret, reason, conflict


# -- module notifier ---------------------------------------------------------------


def klp_free_object_loaded(obj: KlpObject) -> None:
    obj.mod = None
    for func in obj.func_list:
        func.old_func = None
        if func.nop:
            func.new_func = None


def klp_cleanup_module_patches_limited(klp: Klp, mod: Module, limit: KlpPatch | None) -> None:
    for patch in klp.patches:
        if patch is limit:
            break
        for obj in patch.obj_list:
            if not klp_is_module(obj) or obj.name != mod.name:
                continue
            if patch is not klp.transition_patch:
                klp_pre_unpatch_callback(obj)
            klp.msg("reverting", patch.name, mod.name)
            klp_unpatch_object(klp, obj)
            klp_post_unpatch_callback(obj)
            klp_free_object_loaded(obj)
            break


def klp_module_coming(klp: Klp, mod: Module) -> int:
    if mod.state != MODULE_STATE_COMING:
        return -EINVAL
    if mod.name == "vmlinux":
        klp.msg("vmlinux_module")
        return -EINVAL
    mod.klp_alive = True
    for patch in klp.patches:
        for obj in patch.obj_list:
            if not klp_is_module(obj) or obj.name != mod.name:
                continue
            obj.mod = mod
            ret = klp_init_object_loaded(klp, patch, obj)
            if ret:
                klp.msg("coming_init_failed", patch.name, mod.name, ret)
                return _coming_failed(klp, mod, patch, obj, ret)
            klp.msg("applying", patch.name, mod.name)
            ret = klp_pre_patch_callback(obj)
            if ret:
                klp.msg("pre_patch_failed", obj.name)
                return _coming_failed(klp, mod, patch, obj, ret)
            ret = klp_patch_object(klp, obj)
            if ret:
                klp.msg("coming_apply_failed", patch.name, mod.name, ret)
                klp_post_unpatch_callback(obj)
                return _coming_failed(klp, mod, patch, obj, ret)
            # Only the transition completion runs post_patch of a patch in
            # transition.
            if patch is not klp.transition_patch:
                klp_post_patch_callback(obj)
            break
    return 0


def _coming_failed(klp: Klp, mod: Module, patch: KlpPatch, obj: KlpObject, ret: int) -> int:
    klp.msg("refusing_module", patch.name, mod.name, mod.name)
    klp.emit(ModuleRefused(patch.name, mod.name, ret))
    mod.klp_alive = False
    obj.mod = None
    klp_cleanup_module_patches_limited(klp, mod, patch)
    return ret


def klp_module_going(klp: Klp, mod: Module) -> None:
    if mod.state not in (MODULE_STATE_GOING, MODULE_STATE_COMING):
        return
    mod.klp_alive = False
    klp_cleanup_module_patches_limited(klp, mod, None)
