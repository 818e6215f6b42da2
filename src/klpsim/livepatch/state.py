"""System states: klp_get_state(), klp_get_prev_state() and the
compatibility check. Mirrors kernel/livepatch/state.c; which patches must
carry which states is profile policy (see profiles.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klpsim.livepatch.events import RefusalRule
from klpsim.livepatch.structs import KlpPatch, KlpState

if TYPE_CHECKING:
    from klpsim.livepatch.core import Klp

__all__ = ["klp_get_state", "klp_get_prev_state", "klp_is_patch_compatible"]


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
    """May *patch* be enabled next to the installed patches?

    The model also keeps the rule broken in ``klp.refusal`` (for the
    PatchRefused event): the kernel only logs that the patch is incompatible.
    """
    policy = klp.policy
    for old_patch in klp.patches:
        for old_state in old_patch.states:
            if not policy.state_compatible(patch, old_patch, old_state):
                klp.refusal = (_state_rule(klp, patch, old_patch, old_state), None,
                               old_state.id, old_patch.name)  # fmt: skip
                return False
        if policy.conflicts(klp, patch, old_patch):
            func = policy.conflicting_func(klp, patch, old_patch)
            klp.refusal = (RefusalRule.SET_FUNCTION, func, None, old_patch.name)
            return False
    return True


def _state_rule(klp: Klp, new: KlpPatch, old_patch: KlpPatch, old_state: KlpState) -> RefusalRule:
    """Which state rule refused *new* (the policy only says that one did)."""
    state = klp_get_state(new, old_state.id)
    if state is None:
        return RefusalRule.STATE_MISSING
    if klp.policy.disjoint_sets and new.replace_set != old_patch.replace_set:
        return RefusalRule.SET_STATE
    return RefusalRule.STATE_DOWNGRADE
