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
    "TransitionEvent",
    "PatchEnabled",
    "PatchRefused",
    "PatchesReplaced",
    "TransitionForced",
    "PatchFreed",
    "ModuleRefused",
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
    """The rule a refused patch broke, finer than :class:`RefusalReason`."""

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


@distinct
class PatchRefused(NamedTuple):
    """klp_enable_patch() returned *errno* (negative)."""

    patch: str
    module: str
    errno: int
    reason: RefusalReason
    rule: RefusalRule | None = None
    """The rule broken, where the model knows it."""
    function: str | None = None
    """The function involved: ``object:old_name,sympos`` (object ``vmlinux``
    or a module name), as the patch names it."""
    state_id: int | None = None
    """The state id involved."""
    other: str | None = None
    """The installed patch the refused one clashes with."""


@distinct
class PatchesReplaced(NamedTuple):
    """klp_complete_transition() of *patch* unpatched the patches it
    replaces (atomic replace, or the profile's replace policy)."""

    patch: str
    replaced: tuple[str, ...]


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


KlpEvent = (
    TransitionEvent
    | PatchEnabled
    | PatchRefused
    | PatchesReplaced
    | TransitionForced
    | PatchFreed
    | ModuleRefused
)
