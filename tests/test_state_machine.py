"""Random sequences of loads, disables, unloads, target modules, sleeping
tasks and time, thrown at the model; the invariants hold after every step.

Each step is a line of scenario script, so a failing sequence is a script.
"""

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from klpsim.session import InvariantViolation, Session

VMLINUX_FUNCS = ["cmdline_proc_show", "meminfo_proc_show", "version_proc_show", "uptime_proc_show"]
TARGET_FUNCS = ["tgt_a_show", "tgt_a_work"]
ALL_FUNCS = [("vmlinux", f) for f in VMLINUX_FUNCS] + [("tgt_a", f) for f in TARGET_FUNCS]

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def patch_toml(funcs, replace, replace_set, state, replaceable=False) -> str:
    lines = [
        "livepatch = true",
        f"replace = {'true' if replace else 'false'}",
        f"replace_set = {replace_set}",
    ]
    if replaceable:
        lines.append("replaceable = true")
    for objname in ("vmlinux", "tgt_a"):
        mine = [f for o, f in funcs if o == objname]
        if mine:
            lines.append(f'[[objects]]\nname = "{objname}"\nfuncs = [')
            lines += [f'  {{ old_name = "{f}" }},' for f in mine]
            lines.append("]")
    if state:
        lines.append(f"[[states]]\nid = {state[0]}\nversion = {state[1]}")
    return "\n".join(lines) + "\n"


class LivepatchMachine(RuleBasedStateMachine):
    """Loads of random patches, disables and time."""

    profile = "7.1"
    check = True
    with_states = True

    @initialize()
    def boot(self):
        self.session = Session(
            self.profile, definitions={"tgt_a": f"functions = {TARGET_FUNCS!r}\n".replace("'", '"')}
        )
        self.n = 0
        self.tasks: list[int] = []

    def step(self, line: str):
        self.session.step(line, check=self.check)

    @property
    def patches(self):
        return sorted(self.session.klp.kernel.fs.listdir("/sys/kernel/livepatch"))

    @property
    def lp_modules(self):
        return sorted(m for m in self.session.klp.kernel.modules.modules if m.startswith("lp"))

    @rule(
        funcs=st.lists(st.sampled_from(ALL_FUNCS), min_size=1, max_size=3, unique=True),
        replace=st.booleans(),
        replace_set=st.integers(0, 2),
        state=st.none() | st.tuples(st.integers(1, 2), st.integers(1, 3)),
        replaceable=st.booleans(),
    )
    def load_patch(self, funcs, replace, replace_set, state, replaceable):
        self.n += 1
        name = f"lp{self.n}"
        replaceable = replaceable and self.profile == "replaceable"
        state = state if self.with_states else None
        self.session.resolver.texts[name] = patch_toml(
            funcs, replace, replace_set, state, replaceable
        )
        self.step(f"insmod test_modules/{name}.ko")
        self.step("sleep 1")  # as load_lp would wait (on 2 CPUs a transition takes ~1 s)

    @precondition(lambda self: self.patches)
    @rule(data=st.data())
    def disable(self, data):
        name = data.draw(st.sampled_from(self.patches))
        self.step(f"echo 0 > /sys/kernel/livepatch/{name}/enabled")

    @rule(seconds=st.sampled_from(["0.1", "1", "3", "20"]))
    def wait(self, seconds):
        self.step(f"sleep {seconds}")


class FullMachine(LivepatchMachine):
    """Loads plus everything else: force, unload, modules, tasks."""

    @precondition(lambda self: self.patches)
    @rule(data=st.data())
    def force(self, data):
        name = data.draw(st.sampled_from(self.patches))
        self.step(f"echo 1 > /sys/kernel/livepatch/{name}/force")

    @precondition(lambda self: self.lp_modules)
    @rule(data=st.data())
    def unload(self, data):
        self.step(f"rmmod {data.draw(st.sampled_from(self.lp_modules))}")

    @rule(load=st.booleans())
    def target_module(self, load):
        self.step("insmod test_modules/tgt_a.ko" if load else "rmmod tgt_a")

    @rule(load=st.booleans())
    def callbacks_demo(self, load):
        if load:
            self.step("insmod test_modules/test_klp_callbacks_mod.ko")
            self.step("insmod test_modules/test_klp_callbacks_demo.ko")
        else:
            self.step("rmmod test_klp_callbacks_mod")

    @rule()
    def spawn(self):
        self.step("spawn_task worker")
        self.tasks.append(1001 + len(self.tasks))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), func=st.sampled_from(VMLINUX_FUNCS))
    def sleep_in(self, data, func):
        pid = data.draw(st.sampled_from(self.tasks))
        self.step(f"sleep_task {pid} {func}")

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def wake(self, data):
        self.step(f"wake_task {data.draw(st.sampled_from(self.tasks))}")


class Mainline(FullMachine):
    profile = "7.1"


class ReplaceSet(FullMachine):
    profile = "replace-set"


TestMainline = Mainline.TestCase
TestMainline.settings = SETTINGS
TestReplaceSet = ReplaceSet.TestCase
TestReplaceSet.settings = SETTINGS


class Replaceable(LivepatchMachine):
    profile = "replaceable"
    with_states = False  # states only make replace patches refused more often


def test_replaceable_breaks_per_task_consistency():
    """The state machine finds a violation under RFC 3/4 + 4/4; the sequence it
    found is kept as tests/scenarios/replaceable/found-by-hypothesis.sh."""
    found = settings(SETTINGS, max_examples=300, phases=[Phase.generate])  # no shrinking
    with pytest.raises(InvariantViolation) as info:
        run_state_machine_as_test(Replaceable, settings=found)
    assert info.value.violations[0].invariant == "per-task-consistency"


def test_shadow_variables_are_freed_as_the_api_promises():
    s = Session("7.1")
    s.step("insmod test_modules/test_klp_shadow_vars.ko")
    assert s.klp.shadow.vars == {}
    s.step("rmmod test_klp_shadow_vars")
