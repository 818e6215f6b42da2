"""Profiles for the 2026 replace-set series and the variants on its way.

See replace-set-thread.md: the v2 series of 2026-05-29 ("[PATCH v2 0/4]
livepatch: Introduce replace set support"), and RFC 3/4 + 4/4 of
2026-04-02 ("livepatch: Add "replaceable" attribute to klp_patch",
"livepatch: Implement livepatch hybrid mode").
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from klpsim.livepatch.events import RefusalRule, function_label
from klpsim.livepatch.profiles import (
    MAINLINE_ATTRS,
    MAINLINE_CONFIG,
    PROFILES,
    PatchAttr,
    Profile,
    ReplacePolicy,
    register,
)
from klpsim.livepatch.state import klp_get_state

if TYPE_CHECKING:
    from klpsim.livepatch.core import Klp
    from klpsim.livepatch.structs import KlpPatch, KlpState

__all__ = ["ReplaceSetPolicy"]


class ReplaceSetPolicy(ReplacePolicy):
    """v2 2/4: every patch replaces the older patches of its own set.

    Patches of different sets may not patch the same function (object +
    old_name + old_sympos) nor share a state id.
    """

    name = "replace_set"
    patch_fields = ("replace_set",)
    disjoint_sets = True

    def adds_nops(self, patch: KlpPatch) -> bool:
        return True  # klp_init_patch() calls klp_add_nops() unconditionally

    def replaces(self, new: KlpPatch, old: KlpPatch) -> bool:
        return new.replace_set == old.replace_set

    def state_compatible(self, new: KlpPatch, old_patch: KlpPatch, old_state: KlpState) -> bool:
        state = klp_get_state(new, old_state.id)
        if new.replace_set == old_patch.replace_set:
            return state is not None and state.version >= old_state.version
        return state is None  # different sets must not share a state id

    function_rule = "two replace sets may not patch the same function"

    def state_rule(
        self, new: KlpPatch, old_patch: KlpPatch, old_state: KlpState
    ) -> tuple[RefusalRule, str]:
        if new.replace_set != old_patch.replace_set:
            return RefusalRule.SET_STATE, "two replace sets may not share a state id"
        if klp_get_state(new, old_state.id) is None:
            return (
                RefusalRule.STATE_MISSING,
                "a patch must keep every state of the older patches of its set",
            )
        return RefusalRule.STATE_DOWNGRADE, "a patch may not lower the version of a state"

    def conflict(self, klp: Klp, new: KlpPatch, old_patch: KlpPatch) -> str | None:
        if new.replace_set == old_patch.replace_set:
            return None
        from klpsim.livepatch.core import klp_find_func

        assert new.objs is not None  # refused by klp_enable_patch()
        for obj in new.objs:  # static objects: the patch is not initialised yet
            for old_obj in old_patch.obj_list:
                if (obj.name is None) != (old_obj.name is None):
                    continue
                if obj.name is not None and obj.name != old_obj.name:
                    continue
                assert obj.funcs is not None  # refused by klp_enable_patch()
                # by name first: the same answer as klp_find_func() alone, fast for long patches
                names = {f.old_name for f in old_obj.func_list}
                for func in obj.funcs:
                    if func.old_name in names and klp_find_func(klp, old_obj, func):
                        assert func.old_name is not None  # klp_find_func() matched it
                        return function_label(obj.name, func.old_name, func.old_sympos)
        return None

    def force_marks(self, transition_patch: KlpPatch, other: KlpPatch) -> bool:
        return other.replace_set == transition_patch.replace_set

    def interchangeable(self, field: str, values: range) -> tuple[tuple[int, ...], ...]:
        if field == "replace_set":  # compared only with ==: set 0 is not special
            return (tuple(values),)
        return super().interchangeable(field, values)


# v2 2/4 renames replace -> replace_set (RO, "%u\n"); v2 3/4 removes stack_order.
REPLACE_SET_ATTRS = ("enabled", "transition", "force", "replace_set")
REPLACE_SET_EXTRA: dict[str, PatchAttr] = {
    "replace_set": (0o444, lambda klp, p: f"{p.replace_set}\n", None)
}

register(
    Profile(
        name="replace-set",
        summary="7.1 + replace_set v2 (2026-05-29): scoped atomic replace, cross-set checks",
        release="7.1.0-replace-set",
        policy=ReplaceSetPolicy(),
        patch_attrs=REPLACE_SET_ATTRS,
        config=MAINLINE_CONFIG,
        extra_patch_attrs=REPLACE_SET_EXTRA,
    )
)

# The kernel `klpsim vm --kernel replace-set` builds (real/vm/rskernel.py):
# Debian's 6.12 source with the v2 rules, so the 6.12 profile's base
# behaviour (kstrtobool without e/d, the kprobe arming error, task switching
# in cond_resched(), no stack_order) under the same policy and sysfs as
# "replace-set". Its config is data/replace-set.config over tinyconfig:
# error injection, bpf_override_return(), fail_function, fprobe and the
# LSM hooks on; no IBT (x86_64 tinyconfig leaves X86_KERNEL_IBT off) and
# no module signatures (no E taint: "(OK)" in an oops's module list).
# Without endbr64 its cmdline_proc_show is laid out as 6.1's, 6.12's
# int3 after the return thunk kept (measured as for the Debian profiles).
register(
    dataclasses.replace(
        PROFILES["6.12"],
        name="replace-set-6.12",
        summary="Debian's 6.12 + replace_set v2: the kernel `klpsim vm --kernel replace-set` builds",
        release="6.12.117-klpsim-rs",
        policy=ReplaceSetPolicy(),
        patch_attrs=REPLACE_SET_ATTRS,
        config=MAINLINE_CONFIG - {"X86_KERNEL_IBT", "MODULE_SIG"},
        extra_patch_attrs=REPLACE_SET_EXTRA,
        kprobe_insns={
            "cmdline_proc_show": frozenset({0, 5, 6, 13, 17, 22, 26, 31, 36, 38, 39, 40, 45})
        },
        # no function padding: test_klp_state2/3's pre_unpatch_callback is
        # the last function of the module's page-aligned text
        state_restore_oops_at="pre_unpatch_callback+0x6c/0xe25",
    )
)


class ReplaceablePolicy(ReplacePolicy):
    """RFC 3/4 + 4/4: a replace patch replaces only ``replaceable`` patches.

    The three skips: klp_add_nops(), klp_unpatch_replaced_patches() and
    klp_free_replaced_patches_async() pass over non-replaceable patches.
    There is no conflict check.
    """

    name = "replaceable"
    patch_fields = ("replace", "replaceable")

    def replaces(self, new: KlpPatch, old: KlpPatch) -> bool:
        return bool(new.replace) and old.replaceable


def _replaceable_store(klp: Klp, patch: KlpPatch, buf: str) -> int:
    from klpsim.kernel.errno import EAGAIN, EINVAL

    value = klp.kernel.kstrtobool(buf)
    if not isinstance(value, bool):
        return -EINVAL
    if patch is klp.transition_patch:
        return -EAGAIN
    patch.replaceable = value
    return len(buf)


register(
    Profile(
        name="replaceable",
        summary="7.1 + RFC 3/4 and 4/4 (2026-04-02): per-patch replaceable attribute",
        release="7.1.0-replaceable",
        policy=ReplaceablePolicy(),
        patch_attrs=MAINLINE_ATTRS + ("replaceable",),
        config=MAINLINE_CONFIG,
        extra_patch_attrs={
            "replaceable": (0o644, lambda klp, p: f"{int(p.replaceable)}\n", _replaceable_store)
        },
    )
)


class ReplaceTagPolicy(ReplacePolicy):
    """Yafang Shao's draft of 2026-04-07, "livepatch: Support scoped atomic
    replace using replace tags": ``replace`` becomes a u32 tag.

    A tagged patch replaces the older patches with its tag and every tag-0
    patch; other tags are skipped when unpatching and freeing. The draft left
    klp_add_nops() alone, so nops still cover every older patch, and added no
    conflict check.
    """

    name = "replace_tag"
    replace_is_tag = True

    def nops_for(self, new: KlpPatch, old: KlpPatch) -> bool:
        return True  # klp_add_nops() unchanged: all old patches

    def replaces(self, new: KlpPatch, old: KlpPatch) -> bool:
        if not new.replace:
            return False
        return not old.replace or old.replace == new.replace

    def interchangeable(self, field: str, values: range) -> tuple[tuple[int, ...], ...]:
        if field == "replace":  # tag 0 is special, the others compared with ==
            return ((0,), tuple(v for v in values if v)) if len(values) > 1 else ((0,),)
        return super().interchangeable(field, values)


register(
    Profile(
        name="replace-tag",
        summary="7.1 + Yafang's replace-tag draft (2026-04-07): u32 tag, tag 0 superseded",
        release="7.1.0-replace-tag",
        policy=ReplaceTagPolicy(),
        patch_attrs=MAINLINE_ATTRS,
        config=MAINLINE_CONFIG,
    )
)


class ReplaceSet012Policy(ReplaceSetPolicy):
    """Song Liu's "0 / 1 / 2+" scheme (Apr 8, section 3.4): 0 replaces nothing,
    1 replaces every patch, 2 and up replace their own set. Nobody specified
    conflict checks for it; only the state rules of mainline apply, with
    "cumulative" meaning a set other than 0."""

    name = "replace_set_012"
    disjoint_sets = False  # nobody specified conflict checks for this scheme
    state_rule = ReplacePolicy.state_rule

    def adds_nops(self, patch: KlpPatch) -> bool:
        return patch.replace_set != 0

    def replaces(self, new: KlpPatch, old: KlpPatch) -> bool:
        if new.replace_set == 0:
            return False
        return new.replace_set == 1 or new.replace_set == old.replace_set

    def state_compatible(self, new: KlpPatch, old_patch: KlpPatch, old_state: KlpState) -> bool:
        state = klp_get_state(new, old_state.id)
        if state is None:
            return not self.replaces(new, old_patch)
        return state.version >= old_state.version

    def conflict(self, klp: Klp, new: KlpPatch, old_patch: KlpPatch) -> str | None:
        return None

    def force_marks(self, transition_patch: KlpPatch, other: KlpPatch) -> bool:
        return self.replaces(transition_patch, other)

    def interchangeable(self, field: str, values: range) -> tuple[tuple[int, ...], ...]:
        if field == "replace_set":  # 0 and 1 are special, 2 and up compared with ==
            rest = tuple(v for v in values if v >= 2)
            return tuple((v,) for v in values if v < 2) + ((rest,) if rest else ())
        return ReplacePolicy.interchangeable(self, field, values)


register(
    Profile(
        name="replace-set-012",
        summary="7.1 + the 0/1/2+ replace_set scheme (section 3.4): 0 none, 1 all, 2+ own set",
        release="7.1.0-replace-set-012",
        policy=ReplaceSet012Policy(),
        patch_attrs=("enabled", "transition", "force", "replace_set", "stack_order"),
        config=MAINLINE_CONFIG,
        extra_patch_attrs={"replace_set": (0o444, lambda klp, p: f"{p.replace_set}\n", None)},
    )
)
