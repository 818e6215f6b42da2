"""The model's typed events: what happened, without reading the log."""

from harness import Sim
from klpsim.kernel.errno import EINVAL
from klpsim.livepatch.events import (
    Conflict,
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
    Unresolved,
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
    assert PatchEnabled("test_klp_livepatch", "test_klp_livepatch", None, False) in first
    assert [e.phase for e in first if isinstance(e, TransitionEvent)] == [
        TransitionPhase.INIT,
        TransitionPhase.START,
        TransitionPhase.COMPLETE,
        TransitionPhase.COMPLETE,
    ]
    mark = len(s.system.events.records)
    s.sh("load_lp test_klp_atomic_replace replace=1")
    later = events(s, mark)
    # test_klp_atomic_replace patches meminfo only: cmdline goes back to the original
    assert (
        PatchesReplaced(
            "test_klp_atomic_replace", ("test_klp_livepatch",), reverted=("cmdline_proc_show",)
        )
        in later
    )
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
        Conflict(
            "a patch may not lower the version of a state",
            "test_klp_state2",
            None,
            1,
            kind=RefusalRule.STATE_DOWNGRADE,
        ),
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
    assert refused.conflict == Conflict(
        "two replace sets may not patch the same function",
        "team_a",
        1,
        function="init_once,2",
        kind=RefusalRule.SET_FUNCTION,
    )
    assert refused.replace_set == 2 and refused.unresolved is None


def test_refusal_names_the_state_of_another_set():
    b = "livepatch = true\nreplace_set = 2\n[[states]]\nid = 7\nversion = 3\n"
    refused = _refused("replace-set", b)
    assert refused.conflict == Conflict(
        "two replace sets may not share a state id", "team_a", 1, 7, kind=RefusalRule.SET_STATE
    )


def test_refusal_names_a_missing_state_of_the_same_set():
    refused = _refused("replace-set", "livepatch = true\nreplace_set = 1\n")
    assert refused.conflict == Conflict(
        "a patch must keep every state of the older patches of its set",
        "team_a",
        1,
        7,
        kind=RefusalRule.STATE_MISSING,
    )


def test_refusal_names_the_missing_or_ambiguous_symbol():
    missing = 'livepatch = true\n[[objects]]\nname = "vmlinux"\nfuncs = [{ old_name = "nope" }]\n'
    refused = _refused("7.1", missing)
    assert (refused.reason, refused.conflict, refused.unresolved) == (
        RefusalReason.INIT,
        None,
        Unresolved(RefusalRule.SYMBOL_NOT_FOUND, None, "nope", 0, 0),
    )
    ambiguous = missing.replace('"nope"', '"show_device"')
    refused = _refused("7.1", ambiguous)
    assert refused.unresolved == Unresolved(RefusalRule.SYMBOL_AMBIGUOUS, None, "show_device", 0, 2)
    beyond = ambiguous.replace('"show_device" }', '"show_device", old_sympos = 3 }')
    refused = _refused("7.1", beyond)
    assert refused.unresolved == Unresolved(RefusalRule.SYMPOS_NOT_FOUND, None, "show_device", 3, 2)


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


def test_func_stack_changes_follow_klp_ops():
    from klpsim.livepatch.events import FuncStackChanged, StackEntry, TaskSwitched

    s = Sim("7.1")
    s.sh("load_lp test_klp_livepatch\nload_lp test_klp_atomic_replace replace=1")
    changes = [e for e in events(s) if isinstance(e, FuncStackChanged)]
    cmdline = [e.stack for e in changes if e.function == "cmdline_proc_show"]
    assert cmdline == [
        (StackEntry("test_klp_livepatch"),),
        # the replace's nop goes on top, then the replaced patch and the nop go
        (StackEntry("test_klp_atomic_replace", nop=True), StackEntry("test_klp_livepatch")),
        (StackEntry("test_klp_atomic_replace", nop=True),),
        (),
    ]
    # and the last change of each function is what klp_ops holds now
    last = {e.function: e.stack for e in changes}
    now = {
        sym.name: tuple(f.obj.patch.name for f in ops.func_stack) for sym, ops in s.klp.ops.items()
    }
    assert {f: tuple(e.patch for e in st) for f, st in last.items() if st} == now
    # every task that switched to the atomic replace is named once per transition
    switched = [e for e in events(s) if isinstance(e, TaskSwitched)]
    assert {e.patch_state for e in switched} == {1}
    pids = [t.pid for t in s.kernel.sched.all_tasks()]
    assert sorted(e.pid for e in switched) == sorted(pids * 2)
