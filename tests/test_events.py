"""The model's typed events: what happened, without reading the log."""

from harness import ROOT, Sim
from klpsim.kernel.errno import EINVAL
from klpsim.livepatch.events import (
    PatchEnabled,
    PatchesReplaced,
    PatchFreed,
    PatchRefused,
    RefusalReason,
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
        "test_klp_state", "test_klp_state", -EINVAL, RefusalReason.INCOMPATIBLE
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


def test_a_module_refused_on_coming_names_patch_module_and_errno():
    from klpsim.livepatch.events import ModuleRefused

    s = Sim("7.1", module_dirs=[ROOT / "tests" / "scenarios" / "7.1" / "test_modules"])
    s.sh("load_lp test_klp_coming_ok\nload_lp test_klp_coming_bad")
    mark = len(s.system.events.records)
    s.sh("load_failing_mod test_klp_coming_tgt")
    refused = [e for e in events(s, mark) if isinstance(e, ModuleRefused)]
    assert refused == [ModuleRefused("test_klp_coming_bad", "test_klp_coming_tgt", -EINVAL)]
    # The loader forgot the module, and livepatch its objects for it.
    assert s.kernel.modules.find_module("test_klp_coming_tgt") is None
    assert all(obj.mod is None for p in s.klp.patches for obj in p.obj_list)
