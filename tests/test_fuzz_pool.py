"""klpsim fuzz's module pool: what each real kernel's livepatches set."""

from __future__ import annotations

from pathlib import Path

from klpsim.model.schema import LivepatchDef, parse_definition
from klpsim.real.vm.modgen import DEBIAN, REPLACE_SET_KERNEL, generate_module
from klpsim.tools.fuzz import generate, module_pool
from klpsim.tools.realdiff import run_model


def _livepatches(kernel: str) -> list[LivepatchDef]:
    pool = module_pool(7, kernel)
    defs = [
        parse_definition(text, Path(f"{name}.toml"))
        for name, text in pool.items()
        if "_sympos" not in name
    ]
    return [d for d in defs if isinstance(d, LivepatchDef)]


def test_replace_set_kernel_draws_sets_0_to_2():
    lps = _livepatches("replace-set")
    assert len(lps) == 16
    assert {d.replace_set for d in lps} == {0, 1, 2}
    assert not any(d.replace for d in lps)
    for d in lps:
        assert f"static int __klpsim_replace_set = {d.replace_set};" in generate_module(
            d, REPLACE_SET_KERNEL
        )


def test_debian_kernels_draw_replace_only():
    lps = _livepatches("6.12")
    assert {d.replace for d in lps} == {False, True}
    assert not any(d.replace_set for d in lps)
    assert all("replace_set" not in generate_module(d, DEBIAN) for d in lps)


def test_replace_set_scenarios_run_on_the_model():
    """Every step the builder keeps succeeds on the model's replace-set
    profile, and the scenario leaves no patch behind (the guest is reused)."""
    scenarios = generate("replace-set", 3, 3)
    assert any("replace_set = " in text for sc in scenarios for text in sc.modules.values())
    for sc in scenarios:
        status, system = run_model(sc.text, Path(f"{sc.name}.sh"), "replace-set", [], sc.modules)
        assert status == 0, sc.text
        assert system.kernel.fs.listdir("/sys/kernel/livepatch") == [], sc.text


def test_every_step_kind_reaches_five_percent():
    """klpsim fuzz --stats: each step kind in at least 5% of the scenarios,
    on each real kernel's profile."""
    from klpsim.tools.fuzz import KINDS, stats

    for kernel in ("6.1", "6.12", "replace-set"):
        shares = stats(generate(kernel, 11, 100))
        assert list(shares) == list(KINDS)
        low = {k: v for k, v in shares.items() if v < 0.05}
        assert not low, (kernel, low)


def test_sympos_livepatches_cover_ambiguity_both_positions_and_absence():
    pool = module_pool(7, "6.12")
    assert sorted(n for n in pool if "_sympos" in n) == [f"test_klp_fz_sympos{i}" for i in range(4)]
    assert 'old_name = "m_show", old_sympos = 2' in pool["test_klp_fz_sympos2"]


def test_scenarios_that_leave_state_get_a_guest_of_their_own():
    """tracefs keeps state no cleanup undoes (the sticky M flag, WARN_ONCE)
    and a force may pin a module: those scenarios boot their own guest; the
    others share one and leave it clean."""
    from klpsim.tools.fuzz import FRESH_GUEST

    scenarios = generate("6.12", 5, 60)
    fresh = [sc for sc in scenarios if sc.fresh_guest]
    assert fresh and len(fresh) < len(scenarios)
    for sc in scenarios:
        assert sc.fresh_guest == bool(sc.kinds & FRESH_GUEST)
        status, system = run_model(sc.text, Path(f"{sc.name}.sh"), "6.12", [], sc.modules)
        assert status == 0, sc.text
        assert system.kernel.fs.listdir("/sys/kernel/livepatch") == [], sc.text
        if "kprobe_events" in sc.kinds:
            assert "kprobe_events" in sc.text
