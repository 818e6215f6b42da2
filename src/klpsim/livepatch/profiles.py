"""Kernel profiles: which kernel (or proposed series) the model behaves as.

A profile is data plus one replace policy. The core asks the policy the
questions where the proposals differ (who replaces whom, what is a
conflict, whom does force pin) and reads the data for the rest (sysfs
attributes, sympos matching, kernel config, message wording). Each
difference names the commit or posted patch behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from klpsim.livepatch.events import RefusalRule
from klpsim.livepatch.messages import CATALOGUE, Message
from klpsim.livepatch.state import klp_get_state

if TYPE_CHECKING:
    from klpsim.livepatch.core import Klp
    from klpsim.livepatch.structs import KlpPatch, KlpState

__all__ = [
    "Profile",
    "ReplacePolicy",
    "PatchAttr",
    "PROFILES",
    "get_profile",
    "DEFAULT_PROFILE",
]

PatchAttr = tuple[
    int,
    "Callable[[Klp, KlpPatch], str] | None",
    "Callable[[Klp, KlpPatch, str], int] | None",
]
"""A file of /sys/kernel/livepatch/<patch>/: (mode, show(klp, patch),
store(klp, patch, buf) -> count or -errno)."""


class ReplacePolicy:
    """Mainline atomic replace: a ``replace`` patch replaces every older one.

    Since 5.1, e1452b607c48 ("livepatch: Add atomic replace").
    """

    name = "replace"
    patch_fields: tuple[str, ...] = ("replace",)
    """The klp_patch fields this kernel has, beyond objs and states."""

    disjoint_sets = False
    """Does the policy promise one enabled patch per set and disjoint sets?"""
    replace_is_tag = False
    """Is ``replace`` a u32 tag (Yafang's draft) rather than mainline's bool?"""

    def adds_nops(self, patch: KlpPatch) -> bool:
        """klp_init_patch(): does *patch* get nops (and replace on completion)?"""
        return bool(patch.replace)

    def nops_for(self, new: KlpPatch, old: KlpPatch) -> bool:
        """klp_add_nops(): does *new* get nops for the functions of *old*?"""
        return self.replaces(new, old)

    def replaces(self, new: KlpPatch, old: KlpPatch) -> bool:
        """klp_unpatch_replaced_patches() / klp_free_replaced_patches_async():
        is *old* replaced by *new*?"""
        return bool(new.replace)

    def state_compatible(self, new: KlpPatch, old_patch: KlpPatch, old_state: KlpState) -> bool:
        """klp_is_state_compatible(): a cumulative patch must keep every state."""
        state = klp_get_state(new, old_state.id)
        if state is None:
            return not new.replace
        return state.version >= old_state.version

    def state_rule(
        self, new: KlpPatch, old_patch: KlpPatch, old_state: KlpState
    ) -> tuple[RefusalRule, str]:
        """The rule state_compatible() applied (asked only when it refused),
        for a program and in words, for the notes and ``klpsim check``."""
        if klp_get_state(new, old_state.id) is None:
            return (
                RefusalRule.STATE_MISSING,
                "a cumulative patch must keep every state of the patches it replaces",
            )
        return RefusalRule.STATE_DOWNGRADE, "a patch may not lower the version of a state"

    function_rule = "two patches may not patch the same function"
    """conflict()'s rule (RefusalRule.SET_FUNCTION), in words."""

    def conflict(self, klp: Klp, new: KlpPatch, old_patch: KlpPatch) -> str | None:
        """An extra reason to refuse *new* next to *old_patch* (none in mainline):
        the function (function_label()) they share, or None."""
        return None

    def set_of(self, patch: KlpPatch) -> int | None:
        """*patch*'s replace set, on a kernel with sets (None otherwise)."""
        return patch.replace_set if "replace_set" in self.patch_fields else None

    def force_marks(self, transition_patch: KlpPatch, other: KlpPatch) -> bool:
        """klp_force_transition(): does forcing *transition_patch* pin *other*?"""
        return bool(transition_patch.replace)

    def interchangeable(self, field: str, values: range) -> tuple[tuple[int, ...], ...]:
        """Groups of *values* of klp_patch *field* that this policy tells apart
        only by equality, so that renaming them within a group changes
        nothing but the name (the explorer's symmetry reduction; its tests
        check the claim against a search without it). Mainline: the
        ``replace`` bool, every value on its own."""
        return tuple((v,) for v in values)


@dataclass(frozen=True)
class Profile:
    """One simulated kernel."""

    name: str
    summary: str
    release: str
    """``uname -r`` of the simulated kernel."""
    policy: ReplacePolicy
    patch_attrs: tuple[str, ...]
    """Files in /sys/kernel/livepatch/<patch>/."""
    object_patched_attr: bool = True
    """<object>/patched, since 6.1 ("livepatch: add sysfs entry "patched" for each klp_object")."""
    sympos_0_eq_1: bool = True
    """klp_find_func() matches old_sympos 0 and 1, since 6.19: 139560e8b973."""
    kprobe_arm_error_ignored: bool = True
    """Since 6.14, 587e8e6d640b: __register_kprobe() drops -EBUSY from arming."""
    config: frozenset[str] = frozenset()
    extra_patch_attrs: dict[str, PatchAttr] = field(default_factory=dict, compare=False)
    """Files beyond core.PATCH_ATTRS that the series adds."""
    messages: dict[str, Message] = field(default_factory=dict, compare=False)
    sched_switch: Literal["schedule", "cond_resched", "none"] = "schedule"
    """Where a task may switch itself besides kernel exit and idle:
    ``schedule`` (6.16+, 676e8cf70cb0 "sched,livepatch: Untangle
    cond_resched() and live-patching": __schedule() of a freezable sleep),
    ``cond_resched`` (6.4-6.15, e3ff7c609f39 "livepatch,sched: Add livepatch
    task switching to cond_resched()") or ``none`` (before 6.4)."""
    kstrtobool_enable_disable: bool = True
    """kstrtobool() takes e/E and d/D since 6.16 (ae5b3500856f)."""
    ftrace_rec_flags: str = "RIDOM"
    """The flag columns of enabled_functions: O since 6.3 (cbad0fb2d8d9
    "ftrace: Add DYNAMIC_FTRACE_WITH_CALL_OPS"), M since 6.4 (6ce2c04fcbca
    "ftrace: Add MODIFIED flag to show if IPMODIFY or direct was attached")."""
    trace_kprobe_validate_symbol: bool = True
    """validate_probe_symbol() refuses an unknown or ambiguous symbol with
    -EINVAL, since 6.10 ("tracing/kprobes: Add symbol counting check when
    module loads"); before, the count check returned -ENOENT/-EADDRNOTAVAIL."""
    trace_probe_maxact_err: str = "BAD_MAXACT_TYPE"
    """The error for ``pN:`` (maxactive on a kprobe): MAXACT_NO_KPROBE before
    6.5 ("tracing/probes: Add fprobe events for tracing function entry and
    exit" renamed it)."""
    trace_probe_btf_retval: bool = True
    """A kprobe event's ``$retval`` takes the function's BTF return type
    (an ``int`` prints as ``0``) since 6.5, fd26290ec89d ("tracing/probes: Add
    BTF retval type support"); before, the default x64 (``0x0``)."""
    kprobe_disarm_warn_at: str = "kernel/kprobes.c:1130 disarm_kprobe_ftrace+0xb7/0xe0"
    """Where the WARN_ONCE in __disarm_kprobe_ftrace() reports itself
    (``FILE:LINE FUNC+OFF/SIZE``), as this kernel's build prints it (Debian's
    6.12, measured; other kernels are assumed to print the same)."""
    state_restore_oops_at: str = "pre_unpatch_callback+0x8e/0xc0"
    """Where test_klp_state2/3 fault when their state has no data: the
    pre_unpatch callback, with restore_console_loglevel() inlined, reads
    ``*(int *)state->data`` (a state taken over from a patch that stored
    none). ``FUNC+OFF/SIZE`` of the oops's RIP line as this kernel's build
    of the module prints it (Debian's 6.12, measured; 7.1 is assumed to
    print the same)."""
    helpers_load: Literal["insmod", "modprobe"] = "insmod"
    """How this kernel's functions.sh loads modules: ``insmod test_modules/MOD.ko``
    (since the 2024 move of the test modules) or ``modprobe MOD`` (6.1)."""
    verifier_unknown_helper: str = "program of this type cannot use helper {name}#{id}"
    """What the verifier says of a helper the program type lacks: this since
    6.10 ("bpf: improve error message for unsupported helper", Mykyta
    Yatsenko); before, ``unknown func {name}#{id}``."""
    kprobe_insns: dict[str, frozenset[int]] = field(default_factory=dict, compare=False)
    """Instruction starts (offsets, endbr64 included) of vmlinux functions as
    this kernel's build lays them out, measured by probing each offset:
    can_probe() refuses an address inside an instruction with -EILSEQ.
    Functions not listed are taken to start an instruction at every offset
    past the ftrace call."""

    def message(self, key: str) -> Message:
        return self.messages.get(key) or CATALOGUE[key]

    @property
    def patch_fields(self) -> tuple[str, ...]:
        return self.policy.patch_fields


MAINLINE_CONFIG = frozenset(
    {
        "LIVEPATCH",
        "HAVE_RELIABLE_STACKTRACE",
        "DYNAMIC_FTRACE_WITH_ARGS",
        "KPROBES_ON_FTRACE",
        "FUNCTION_ERROR_INJECTION",
        "BPF_KPROBE_OVERRIDE",
        "KPROBES",
        "BPF_EVENTS",
        "KPROBE_EVENTS",
        "FUNCTION_GRAPH_TRACER",
        # arch_adjust_kprobe_addr() puts a probe on func+0 at func+4, past endbr64
        "X86_KERNEL_IBT",
        "MODULE_SIG",
        "FAIL_FUNCTION",
        "FPROBE",
        "SECURITY",
    }
)
# Debian's kernels lack CONFIG_FUNCTION_ERROR_INJECTION, hence also
# CONFIG_BPF_KPROBE_OVERRIDE and CONFIG_FAIL_FUNCTION (real-artifacts.md, Step 1).
DEBIAN_CONFIG = MAINLINE_CONFIG - {
    "FUNCTION_ERROR_INJECTION",
    "BPF_KPROBE_OVERRIDE",
    "FAIL_FUNCTION",
}

# cmdline_proc_show as Debian's gcc-12 builds it: the offsets a kprobe took
# in the guest (klpsim-bpf attach kprobe cmdline_proc_show+N, N = 1..47).
# 6.12's code is 6.1's moved by endbr64 (4 bytes), plus an int3 after the
# return thunk (straight-line speculation).
_CMDLINE_PROC_SHOW_6_1 = frozenset({0, 5, 6, 13, 16, 21, 24, 29, 34, 36, 37})
_CMDLINE_PROC_SHOW_6_12 = frozenset({0, 4, 9, 10, 17, 20, 25, 28, 33, 38, 40, 41, 46})

MAINLINE_ATTRS = ("enabled", "transition", "force", "replace", "stack_order")

PROFILES: dict[str, Profile] = {}


def register(profile: Profile) -> Profile:
    PROFILES[profile.name] = profile
    return profile


register(
    Profile(
        name="7.1",
        summary="mainline as of 7.1: atomic replace, stack_order, sympos 0 == 1",
        release="7.1.0",
        policy=ReplacePolicy(),
        patch_attrs=MAINLINE_ATTRS,
        config=MAINLINE_CONFIG,
    )
)

register(
    Profile(
        name="6.12",
        summary="Debian bookworm-backports 6.12: no stack_order (added in 6.13)",
        release="6.12.117+deb12-amd64",
        policy=ReplacePolicy(),
        # stack_order: 6.13/6.14, "livepatch: Add stack_order sysfs attribute"
        patch_attrs=("enabled", "transition", "force", "replace"),
        # 139560e8b973 reached 6.12.y through stable (Dec 2025).
        sympos_0_eq_1=True,
        kprobe_arm_error_ignored=False,
        config=DEBIAN_CONFIG,
        sched_switch="cond_resched",
        kstrtobool_enable_disable=False,
        kprobe_insns={"cmdline_proc_show": _CMDLINE_PROC_SHOW_6_12},
    )
)

register(
    Profile(
        name="6.1",
        summary="Debian bookworm 6.1: no replace (6.11) or stack_order attribute",
        release="6.1.0-56-amd64",
        policy=ReplacePolicy(),
        # replace: 6.11, "livepatch: Add "replace" sysfs attribute"
        patch_attrs=("enabled", "transition", "force"),
        sympos_0_eq_1=False,
        kprobe_arm_error_ignored=False,
        # Debian's 6.1 is built without CONFIG_X86_KERNEL_IBT and CONFIG_FPROBE.
        config=DEBIAN_CONFIG - {"X86_KERNEL_IBT", "FPROBE"},
        sched_switch="none",
        kstrtobool_enable_disable=False,
        ftrace_rec_flags="RID",
        trace_kprobe_validate_symbol=False,
        trace_probe_maxact_err="MAXACT_NO_KPROBE",
        trace_probe_btf_retval=False,
        kprobe_disarm_warn_at="kernel/kprobes.c:1126 __disarm_kprobe_ftrace+0x7e/0xa0",
        # Debian's 6.1 selftests still load with modprobe (the move to
        # test_modules/ and insmod came with 6.10).
        helpers_load="modprobe",
        verifier_unknown_helper="unknown func {name}#{id}",
        # the last function of the module's text: kallsyms sizes it to the
        # end of the page-aligned text (objdump of Debian's 6.1 build)
        state_restore_oops_at="pre_unpatch_callback+0x6c/0xe0a",
        kprobe_insns={"cmdline_proc_show": _CMDLINE_PROC_SHOW_6_1},
    )
)

DEFAULT_PROFILE = "replace-set"


def get_profile(name: str) -> Profile:
    from klpsim.livepatch import variants  # noqa: F401  (registers the series' profiles)

    return PROFILES[name]


def all_profiles() -> dict[str, Profile]:
    from klpsim.livepatch import variants  # noqa: F401

    return PROFILES
