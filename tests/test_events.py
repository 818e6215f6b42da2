"""The model's typed events: what happened, without reading the log."""

from harness import Sim
from klpsim.kernel.errno import EINVAL
from klpsim.livepatch.events import (
    PatchEnabled,
    PatchesReplaced,
    PatchFreed,
    PatchRefused,
    RefusalReason,
    RefusalRule,
    TransitionEvent,
    TransitionForced,
    TransitionPhase,
    TransitionTarget,
    When,
)
from klpsim.trace.events import LinkAttached, LinkKind, ProgramRan


def events(s: Sim, start: int = 0) -> list:
    return [r.event for r in s.system.events.records[start:]]


def test_enable_then_replace_then_free():
    s = Sim("7.1")
    s.sh("load_lp test_klp_livepatch")
    first = events(s)
    assert first[0] == TransitionEvent(
        TransitionPhase.INIT, When.BEFORE, "test_klp_livepatch", TransitionTarget.PATCHED
    )
    assert PatchEnabled("test_klp_livepatch", "test_klp_livepatch") in first
    assert [e.phase for e in first if isinstance(e, TransitionEvent)] == [
        TransitionPhase.INIT,
        TransitionPhase.START,
        TransitionPhase.COMPLETE,
        TransitionPhase.COMPLETE,
    ]
    mark = len(s.system.events.records)
    s.sh("load_lp test_klp_atomic_replace replace=1")
    later = events(s, mark)
    assert PatchesReplaced("test_klp_atomic_replace", ("test_klp_livepatch",)) in later
    assert PatchFreed("test_klp_livepatch") in later
    # each event is stamped with the simulated time it happened at
    stamps = [r.ts_ns for r in s.system.events.records]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]


def test_refused_load_names_errno_and_reason():
    # test-state-04: a cumulative patch may not drop to an older state version
    s2 = Sim("7.1")
    s2.sh("load_lp test_klp_state2\nload_failing_mod test_klp_state replace=1")
    (refused,) = [e for e in events(s2) if isinstance(e, PatchRefused)]
    assert refused == PatchRefused(
        "test_klp_state",
        "test_klp_state",
        -EINVAL,
        RefusalReason.INCOMPATIBLE,
        RefusalRule.STATE_DOWNGRADE,
        state_id=1,
        other="test_klp_state2",
    )


_SET_A = """livepatch = true
replace_set = 1
[[objects]]
name = "vmlinux"
funcs = [{ old_name = "meminfo_proc_show" }, { old_name = "init_once", old_sympos = 2 }]
[[states]]
id = 7
version = 1
"""


def _refused(profile: str, second: str) -> PatchRefused:
    s = Sim(profile, definitions={"team_a": _SET_A, "team_b": second})
    s.sh("load_lp team_a\nload_failing_mod team_b")
    (refused,) = [e for e in events(s) if isinstance(e, PatchRefused)]
    return refused


def test_refusal_names_the_function_of_another_set():
    b = 'livepatch = true\nreplace_set = 2\n[[objects]]\nname = "vmlinux"\n'
    b += 'funcs = [{ old_name = "init_once", old_sympos = 2 }]\n'
    refused = _refused("replace-set", b)
    assert (refused.rule, refused.function, refused.other) == (
        RefusalRule.SET_FUNCTION,
        "vmlinux:init_once,2",
        "team_a",
    )


def test_refusal_names_the_state_of_another_set():
    b = "livepatch = true\nreplace_set = 2\n[[states]]\nid = 7\nversion = 3\n"
    refused = _refused("replace-set", b)
    assert (refused.rule, refused.state_id, refused.other) == (
        RefusalRule.SET_STATE,
        7,
        "team_a",
    )


def test_refusal_names_a_missing_state_of_the_same_set():
    refused = _refused("replace-set", "livepatch = true\nreplace_set = 1\n")
    assert (refused.rule, refused.state_id, refused.other) == (
        RefusalRule.STATE_MISSING,
        7,
        "team_a",
    )


def test_refusal_names_the_missing_or_ambiguous_symbol():
    missing = 'livepatch = true\n[[objects]]\nname = "vmlinux"\nfuncs = [{ old_name = "nope" }]\n'
    refused = _refused("7.1", missing)
    assert (refused.reason, refused.rule, refused.function, refused.other) == (
        RefusalReason.INIT,
        RefusalRule.SYMBOL_NOT_FOUND,
        "vmlinux:nope,0",
        None,
    )
    ambiguous = missing.replace('"nope"', '"show_device"')
    refused = _refused("7.1", ambiguous)
    assert (refused.rule, refused.function) == (
        RefusalRule.SYMBOL_AMBIGUOUS,
        "vmlinux:show_device,0",
    )


def test_forced_transition_names_pinned_patches():
    s = Sim("7.1")
    s.sh(
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo\n"
        "echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/force"
    )
    (forced,) = [e for e in events(s) if isinstance(e, TransitionForced)]
    assert forced == TransitionForced("test_klp_callbacks_demo", TransitionTarget.PATCHED, ())


def test_bpf_links_and_calls_are_typed():
    s = Sim("7.1")
    s.sh("bpf_attach fentry cmdline_proc_show --name obs\ncat /proc/cmdline")
    attached = [e for e in events(s) if isinstance(e, LinkAttached)]
    assert attached == [LinkAttached("obs", LinkKind.FENTRY, "cmdline_proc_show")]
    (ran,) = [e for e in events(s) if isinstance(e, ProgramRan)]
    assert (ran.link, ran.kind, ran.func) == ("obs", LinkKind.FENTRY, "cmdline_proc_show")
