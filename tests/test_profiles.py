"""The profiles' policy hooks, one rule at a time: who replaces whom, who
gets nops, which states are compatible, what is a conflict, whom force pins.
The scenarios in tests/scenarios/<profile>/ show the same rules in a log."""

from types import SimpleNamespace

import pytest

from harness import Sim
from klpsim.livepatch.profiles import get_profile
from klpsim.livepatch.structs import KlpPatch, KlpState


def patch(name, replace=False, replace_set=0, replaceable=False, states=()):
    mod = SimpleNamespace(name=name)
    return KlpPatch(mod, [], [KlpState(i, v) for i, v in states], replace, replace_set, replaceable)


def policy(profile):
    return get_profile(profile).policy


def test_mainline_replace_replaces_everything():
    p = policy("7.1")
    rep, plain, old = patch("rep", replace=True), patch("plain"), patch("old")
    assert (p.adds_nops(rep), p.adds_nops(plain)) == (True, False)
    assert (p.replaces(rep, old), p.replaces(plain, old)) == (True, False)
    assert (p.nops_for(rep, old), p.nops_for(plain, old)) == (True, False)
    assert (p.force_marks(rep, old), p.force_marks(plain, old)) == (True, False)
    old_state = KlpState(5, 2)
    holder = patch("holder", states=[(5, 2)])
    assert p.state_compatible(patch("n"), holder, old_state)  # not cumulative: may drop it
    assert not p.state_compatible(patch("n", replace=True), holder, old_state)
    assert p.state_compatible(patch("n", replace=True, states=[(5, 2)]), holder, old_state)
    assert not p.state_compatible(patch("n", states=[(5, 1)]), holder, old_state)
    assert not p.disjoint_sets and not p.replace_is_tag


def test_replace_set_replaces_its_own_set_and_keeps_sets_apart():
    p = policy("replace-set")
    a1, a2, b = patch("a1", replace_set=1), patch("a2", replace_set=1), patch("b", replace_set=2)
    assert p.adds_nops(patch("zero")) and p.adds_nops(a1)  # every patch is cumulative
    assert (p.replaces(a2, a1), p.replaces(b, a1)) == (True, False)
    assert (p.nops_for(a2, a1), p.nops_for(b, a1)) == (True, False)
    assert (p.force_marks(a2, a1), p.force_marks(b, a1)) == (True, False)
    st = KlpState(5, 2)
    assert p.state_compatible(patch("n", replace_set=1, states=[(5, 2)]), a1, st)
    assert not p.state_compatible(patch("n", replace_set=1, states=[(5, 1)]), a1, st)
    assert not p.state_compatible(patch("n", replace_set=1), a1, st)  # same set drops it
    assert p.state_compatible(patch("n", replace_set=2), a1, st)
    assert not p.state_compatible(patch("n", replace_set=2, states=[(5, 2)]), a1, st)
    assert p.disjoint_sets


def test_replaceable_replace_takes_only_replaceable_patches():
    p = policy("replaceable")
    rep = patch("rep", replace=True)
    yes, no = patch("yes", replaceable=True), patch("no")
    assert (p.replaces(rep, yes), p.replaces(rep, no)) == (True, False)
    assert p.replaces(patch("plain"), yes) is False
    assert (p.nops_for(rep, yes), p.nops_for(rep, no)) == (True, False)
    assert (p.adds_nops(rep), p.adds_nops(yes)) == (True, False)
    assert p.conflict(None, rep, no) is None


def test_replace_tag_replaces_its_tag_and_tag_0_but_nops_cover_all():
    p = policy("replace-tag")
    t2, t2old, t3, t0 = patch("t2", 2), patch("t2old", 2), patch("t3", 3), patch("t0")
    assert (p.replaces(t2, t2old), p.replaces(t2, t0), p.replaces(t2, t3)) == (True, True, False)
    assert p.replaces(t0, t2) is False
    assert p.nops_for(t2, t3) and p.nops_for(t0, t3)  # klp_add_nops() left alone
    assert (p.adds_nops(t2), p.adds_nops(t0)) == (True, False)
    assert p.replace_is_tag


def test_replace_set_012_zero_none_one_all_two_up_own():
    p = policy("replace-set-012")
    s0, s1, s2, s2b, s3 = (patch(f"s{n}", replace_set=n) for n in (0, 1, 2, 2, 3))
    assert [p.adds_nops(x) for x in (s0, s1, s2)] == [False, True, True]
    assert [p.replaces(s0, x) for x in (s0, s1, s2)] == [False, False, False]
    assert [p.replaces(s1, x) for x in (s0, s2, s3)] == [True, True, True]
    assert [p.replaces(s2b, x) for x in (s0, s2, s3)] == [False, True, False]
    assert (p.force_marks(s2b, s2), p.force_marks(s2b, s3)) == (True, False)
    st = KlpState(5, 2)
    assert p.state_compatible(patch("n"), s2, st)  # set 0 replaces nothing
    assert not p.state_compatible(patch("n", replace_set=2), s2, st)
    assert p.state_compatible(patch("n", replace_set=3), s2, st)
    assert not p.state_compatible(patch("n", replace_set=3, states=[(5, 1)]), s2, st)
    assert p.conflict(None, s2, s3) is None and not p.disjoint_sets


@pytest.mark.parametrize("value, expect", [("0\n", 2), ("1\n", 2), ("maybe\n", -22)])
def test_replaceable_attribute_is_writable(value, expect):
    sim = Sim("replaceable")
    sim.sh("load_lp test_klp_livepatch")
    path = "/sys/kernel/livepatch/test_klp_livepatch/replaceable"
    assert sim.write(path, value) == expect
    assert sim.read(path) == (value.strip() if expect > 0 else "0")


def test_replaceable_of_the_transition_patch_is_eagain():
    sim = Sim("replaceable")
    sim.sh(
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo"
    )
    path = "/sys/kernel/livepatch/test_klp_callbacks_demo/replaceable"
    assert sim.write(path, "1\n") == -11
    assert sim.read(path) == "0"
