"""System states: klp_get_state(), klp_get_prev_state() and the
compatibility check. Mirrors kernel/livepatch/state.c; which patches must
carry which states is profile policy (see profiles.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.livepatch.events import Conflict, RefusalRule
from klpsim.livepatch.structs import KlpPatch, KlpState

if TYPE_CHECKING:
    from klpsim.livepatch.core import Klp

__all__ = [
    "klp_get_state",
    "klp_get_prev_state",
    "klp_is_patch_compatible",
    "klp_patch_conflict",
]


def klp_get_state(patch: KlpPatch, id: int) -> KlpState | None:
    """The state *id* of *patch*, or None."""
    for state in patch.states:
        if state.id == id:
            return state
    return None


def klp_get_prev_state(klp: Klp, id: int) -> KlpState | None:
    """The newest state *id* among the patches installed before the
    transition patch (the ones it replaces or builds on)."""
    if klp.transition_patch is None:
        klp.kernel.warn(
            "",
            "kernel/livepatch/state.c:64 klp_get_prev_state+0x61/0x70",
            once_key="klp_get_prev_state",
        )  # WARN_ON_ONCE()
        return None
    last = None
    for patch in klp.patches:
        if patch is klp.transition_patch:
            break
        state = klp_get_state(patch, id)
        if state is not None:
            last = state
    return last


def klp_is_patch_compatible(klp: Klp, patch: KlpPatch) -> bool:
    """May *patch* be enabled next to the installed patches?"""
    return klp_patch_conflict(klp, patch) is None


def klp_patch_conflict(klp: Klp, patch: KlpPatch) -> Conflict | None:
    """klp_is_patch_compatible(), saying why not: the first conflict, in
    the order the kernel checks (patches in klp_patches order, a patch's
    states before its functions)."""
    policy = klp.policy
    for old_patch in klp.patches:
        for old_state in old_patch.states:
            if not policy.state_compatible(patch, old_patch, old_state):
                kind, rule = policy.state_rule(patch, old_patch, old_state)
                return Conflict(
                    rule, old_patch.name, policy.set_of(old_patch), old_state.id, kind=kind
                )
        func = policy.conflict(klp, patch, old_patch)
        if func is not None:
            return Conflict(
                policy.function_rule,
                old_patch.name,
                policy.set_of(old_patch),
                function=func,
                kind=RefusalRule.SET_FUNCTION,
            )
    return None
