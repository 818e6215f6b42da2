"""What kernel/livepatch does, as typed events.

The kernel has no tracepoints in kernel/livepatch; its log says what
happened in words. The model emits these events at the same places (in
core.py and transition.py) so that a consumer (the invariant checker,
notes, a timeline) can tell what happened without reading the log. Each
event names patches and modules by name: an event stays true after the
objects it talks about are freed.
"""

from enum import Enum
from typing import NamedTuple

from klpsim.kernel.tracepoint import distinct

__all__ = [
    "TransitionPhase",
    "When",
    "TransitionTarget",
    "RefusalReason",
    "RefusalRule",
    "Conflict",
    "Unresolved",
    "Blocker",
    "StackEntry",
    "function_label",
    "TransitionEvent",
    "PatchEnabled",
    "PatchRefused",
    "PatchesReplaced",
    "TransitionForced",
    "PatchFreed",
    "ModuleRefused",
    "TransitionBlocked",
    "TaskSwitched",
    "FuncStackChanged",
    "KlpEvent",
]


class TransitionPhase(Enum):
    """A step of a transition (transition.c)."""

    INIT = "init"
    """klp_init_transition(): every task set to the initial state."""
    START = "start"
    """klp_start_transition(): TIF_PATCH_PENDING set on the tasks to switch."""
    REVERSE = "reverse"
    """klp_reverse_transition(): ``enabled`` written during the transition."""
    COMPLETE = "complete"
    """klp_complete_transition(): every task switched (or the enable failed)."""


class When(Enum):
    """Whether the event comes before or after its step changes anything."""

    BEFORE = "before"
    AFTER = "after"


class TransitionTarget(Enum):
    """``klp_target_state``: KLP_TRANSITION_PATCHED or KLP_TRANSITION_UNPATCHED."""

    UNPATCHED = 0
    PATCHED = 1

    @property
    def verb(self) -> str:
        """The kernel log's word: ``patching`` or ``unpatching``."""
        return "patching" if self is TransitionTarget.PATCHED else "unpatching"


class RefusalReason(Enum):
    """Why klp_enable_patch() returned an error."""

    INVALID = "invalid"
    """A malformed klp_patch (no module, no objects, a NULL funcs array)."""
    NOT_LIVEPATCH = "not-livepatch"
    """The module lacks MODULE_INFO(livepatch, "Y")."""
    INCOMPATIBLE = "incompatible"
    """klp_is_patch_compatible(): states (or, per profile, sets) conflict."""
    NO_MODULE_REFERENCE = "no-module-reference"
    """try_module_get() of the patch module failed."""
    INIT = "init"
    """klp_init_patch() failed: sysfs, symbols or nops."""
    ENABLE = "enable"
    """__klp_enable_patch() failed: busy, a pre_patch callback, or ftrace."""


class RefusalRule(Enum):
    """The rule a refused patch broke, finer than :class:`RefusalReason`,
    as a program reads it: :attr:`Conflict.kind` for the first four,
    :attr:`Unresolved.kind` for the symbol lookups."""

    SET_FUNCTION = "set-function"
    """A function (object, old_name, sympos) that a patch of another replace
    set patches (replace-set series, klp_is_patch_compatible())."""
    SET_STATE = "set-state"
    """A state id that a patch of another replace set declares."""
    STATE_DOWNGRADE = "state-downgrade"
    """A lower version of a state an installed patch it must keep declares."""
    STATE_MISSING = "state-missing"
    """A patch that replaces another (mainline: ``replace``; sets: the same
    set) without a state that one declares (klp_is_state_compatible())."""
    SYMBOL_NOT_FOUND = "symbol-not-found"
    """klp_find_object_symbol(): no symbol ``old_name`` in the object."""
    SYMBOL_AMBIGUOUS = "symbol-ambiguous"
    """klp_find_object_symbol(): several symbols ``old_name`` and sympos 0."""
    SYMPOS_NOT_FOUND = "sympos-not-found"
    """klp_find_object_symbol(): fewer symbols ``old_name`` than sympos."""


def function_label(objname: str | None, name: str, sympos: int = 0) -> str:
    """A function as notes and views name it: ``func`` (vmlinux) or
    ``module:func``, with ``,sympos`` when it is not the first of its name."""
    label = name if objname is None else f"{objname}:{name}"
    return f"{label},{sympos}" if sympos > 1 else label


class Conflict(NamedTuple):
    """Why klp_is_patch_compatible() (or __klp_enable_patch()'s busy check)
    refused a patch: the rule, what the patches share, and the other patch."""

    rule: str
    """The rule broken, in words the profile's policy chose."""
    other: str
    """The installed patch it conflicts with."""
    other_set: int | None = None
    """That patch's replace set (None on a kernel without sets)."""
    state_id: int | None = None
    """The klp_state id, for a state conflict."""
    function: str | None = None
    """The function both patch (function_label()), for a function conflict."""
    kind: RefusalRule | None = None
    """:attr:`rule` as a program reads it (the same decision of the policy);
    None for the busy check, which is no rule of klp_is_patch_compatible()."""


class Unresolved(NamedTuple):
    """A func whose old_name klp_find_object_symbol() could not resolve to
    one symbol, so klp_init_patch() failed; the kernel logs the name (and
    the object for two of the three), never the patch."""

    kind: RefusalRule
    """SYMBOL_NOT_FOUND, SYMBOL_AMBIGUOUS or SYMPOS_NOT_FOUND."""
    objname: str | None
    """The klp_object's name: a module, or None for vmlinux."""
    name: str
    """The func's old_name."""
    sympos: int
    """The func's old_sympos, as the patch gives it."""
    nr_symbols: int
    """How many symbols of that name the object has (the kernel stops
    counting at two when old_sympos is 0; the model counts them all)."""

    @property
    def function(self) -> str:
        """function_label() of the func."""
        return function_label(self.objname, self.name, self.sympos)


class Blocker(NamedTuple):
    """A task klp_try_switch_task() could not switch."""

    pid: int
    comm: str
    why: str
    """``sleeping`` (-EADDRINUSE: a changed function on its stack),
    ``running`` (-EBUSY: on a CPU), ``unreliable`` (-EINVAL: no reliable
    stack) or ``no-reliable-stacktrace`` (the kernel lacks
    HAVE_RELIABLE_STACKTRACE: only kernel exit switches it)."""
    function: str | None = None
    """For ``sleeping``: the patched or nop'ed function (function_label())."""
    code: str | None = None
    """For ``sleeping``: the code on its stack, ``object:symbol``."""
    nop: bool = False
    """For ``sleeping``: the transition patch's func is a nop (atomic replace)."""


class StackEntry(NamedTuple):
    """One klp_func on a func_stack."""

    patch: str
    nop: bool = False


@distinct
class TransitionEvent(NamedTuple):
    """A transition step of *patch* towards *target*."""

    phase: TransitionPhase
    when: When
    patch: str
    target: TransitionTarget


@distinct
class PatchEnabled(NamedTuple):
    """klp_enable_patch() returned 0: the patch is registered and its
    patching transition started (it may not have completed)."""

    patch: str
    module: str
    replace_set: int | None = None
    """Its replace set, on a kernel with sets."""
    replace: bool | int | None = None
    """Its ``replace`` field (a u32 tag on replace-tag), on a kernel with one."""


@distinct
class PatchRefused(NamedTuple):
    """klp_enable_patch() returned *errno* (negative)."""

    patch: str
    module: str
    errno: int
    reason: RefusalReason
    conflict: Conflict | None = None
    """For INCOMPATIBLE (and a busy ENABLE): which rule, and against whom."""
    replace_set: int | None = None
    """The refused patch's replace set, on a kernel with sets."""
    unresolved: Unresolved | None = None
    """For INIT: the func whose symbol klp_find_object_symbol() did not find."""


@distinct
class PatchesReplaced(NamedTuple):
    """klp_complete_transition() of *patch* unpatched the patches it
    replaces (atomic replace, or the profile's replace policy)."""

    patch: str
    replaced: tuple[str, ...]
    reverted: tuple[str, ...] = ()
    """Functions of the replaced patches that now run the original code."""
    repatched: tuple[str, ...] = ()
    """Functions of the replaced patches that *patch* patches too."""
    kept: tuple[tuple[str, str], ...] = ()
    """(function, patch): functions of the replaced patches that another,
    not replaced, patch still patches."""


@distinct
class TransitionForced(NamedTuple):
    """klp_force_transition(): every task switched, safe or not. *pinned*:
    the patches whose modules can never be removed now."""

    patch: str
    target: TransitionTarget
    pinned: tuple[str, ...]


@distinct
class PatchFreed(NamedTuple):
    """klp_free_patch_finish(): the patch's sysfs directory is gone and its
    module reference dropped (unless it was forced)."""

    patch: str


@distinct
class ModuleRefused(NamedTuple):
    """klp_module_coming() refused *module*: *patch* could not patch it."""

    patch: str
    module: str
    errno: int


@distinct
class TransitionBlocked(NamedTuple):
    """klp_try_complete_transition() found tasks it could not switch; the
    transition stays and the delayed work will retry (one event per try)."""

    patch: str
    target: TransitionTarget
    blockers: tuple[Blocker, ...]


@distinct
class TaskSwitched(NamedTuple):
    """A task reached the target state of the transition (its patch_state
    changed): by a stack check, at kernel exit or idle, or forced."""

    pid: int
    comm: str
    patch_state: int
    how: str
    """``stack-check``, ``kernel-exit`` (exit to user mode or the idle
    loop), ``forced`` or ``fork`` (a child inherits the parent's state)."""


@distinct
class FuncStackChanged(NamedTuple):
    """klp_patch_func() or klp_unpatch_func() changed a func_stack."""

    function: str
    """function_label() of the original function."""
    stack: tuple[StackEntry, ...]
    """The stack after the change, top (newest) first; empty: the original runs."""


KlpEvent = (
    TransitionEvent
    | PatchEnabled
    | PatchRefused
    | PatchesReplaced
    | TransitionForced
    | PatchFreed
    | ModuleRefused
    | TransitionBlocked
    | TaskSwitched
    | FuncStackChanged
)
