"""The consistency model where a transcript cannot show it: per-task
states in the middle of a transition, the retry timer, signals, force and
reversal."""

from harness import Sim


def stalled_busy(profile="7.1"):
    """test_klp_callbacks_busy holds the kworker inside busymod_work_func."""
    sim = Sim(profile)
    sim.sh(
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo"
    )
    return sim


def test_sleeping_task_holds_transition_and_patch_state_reads_each_step():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    assert sim.read(f"/proc/{pid}/patch_state") == "-1"
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    # Everyone starts UNPATCHED; the shell switched itself at once.
    assert sim.read(f"/proc/{pid}/patch_state") == "0"
    assert sim.read("/proc/1000/patch_state") == "1"
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "1"
    sim.tick(10)
    assert sim.read(f"/proc/{pid}/patch_state") == "0"  # still asleep in the original
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "1"
    # The sleeper still runs the old code; a switched task the new one.
    assert sim.kernel.sched.tasks[pid].stack[-1].owner.name == "vmlinux"
    assert sim.read("/proc/cmdline") == "test_klp_livepatch: this has been live patched"
    sim.sh(f"wake_task {pid}")
    sim.tick(1)
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "0"
    assert sim.read(f"/proc/{pid}/patch_state") == "-1"
    # Unpatching: the states run the other way, 1 to 0.
    sim.sh(f"sleep_task {pid} cmdline_proc_show")
    assert sim.kernel.sched.tasks[pid].stack[-1].owner.name == "test_klp_livepatch"
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    assert sim.read(f"/proc/{pid}/patch_state") == "1"
    assert sim.read("/proc/1000/patch_state") == "0"
    sim.tick(5)
    assert sim.read(f"/proc/{pid}/patch_state") == "1"
    sim.sh(f"wake_task {pid}")
    sim.tick(1)
    assert sim.read(f"/proc/{pid}/patch_state") == "-1"
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_livepatch") is None


def test_retries_every_simulated_second_and_signals_on_the_15th():
    sim = stalled_busy()
    attempts = []
    from klpsim.livepatch import transition

    orig = transition.klp_try_complete_transition

    def counting(klp):
        attempts.append(sim.kernel.clock.now)
        return orig(klp)

    transition.klp_try_complete_transition = counting
    try:
        sim.tick(31)
    finally:
        transition.klp_try_complete_transition = orig
    gaps = {b - a for a, b in zip(attempts, attempts[1:], strict=False)}
    assert gaps == {1_000_000_000}, gaps
    assert all(t % 1_000_000_000 == 0 for t in attempts)  # round_jiffies: whole seconds
    signals = [line for line in sim.klp_lines() if "signaling remaining tasks" in line]
    assert signals == ["livepatch: signaling remaining tasks"]  # printed once, at cnt 15
    assert sim.klp.signals_cnt == len(attempts) + 1


def test_signal_switches_a_user_task_asleep_in_a_patched_function():
    sim = Sim()
    pid = int(sim.sh("spawn_task sleeper"))
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    sim.tick(14.5)
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "1"
    sim.tick(2)  # the 15th retry sends a fake signal; the task passes kernel exit
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "0"


def test_force_completes_a_stalled_patching_transition():
    sim = stalled_busy()
    sim.tick(3)
    assert sim.read("/sys/kernel/livepatch/test_klp_callbacks_demo/transition") == "1"
    assert sim.write("/sys/kernel/livepatch/test_klp_callbacks_demo/force", "1\n") == 2
    assert "livepatch: forcing remaining tasks to the patched state" in sim.klp_lines()
    sim.tick(1)
    assert sim.read("/sys/kernel/livepatch/test_klp_callbacks_demo/transition") == "0"
    assert sim.klp_lines()[-1] == "livepatch: 'test_klp_callbacks_demo': patching complete"
    # Only an unpatching force pins the transition patch itself.
    assert not sim.klp.patches[0].forced


def test_forced_unpatch_pins_the_module_forever():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"load_lp test_klp_livepatch\nsleep_task {pid} cmdline_proc_show")
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    sim.tick(3)
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "1"
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/force", "1\n")
    sim.tick(1)
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_livepatch") is None
    assert sim.read("/sys/module/test_klp_livepatch/refcnt") == "1"
    status, _, err = sim.rt.shell(["rmmod", "test_klp_livepatch"])
    assert (status, err) == (1, "rmmod: ERROR: Module test_klp_livepatch is in use\n")


def test_forced_replace_pins_the_replaced_patches():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(
        f"load_lp test_klp_livepatch\nsleep_task {pid} cmdline_proc_show\n"
        "load_lp_nowait test_klp_atomic_replace replace=1"
    )
    sim.tick(3)
    sim.write("/sys/kernel/livepatch/test_klp_atomic_replace/force", "1\n")
    sim.tick(1)
    assert sim.read("/sys/module/test_klp_livepatch/refcnt") == "1"
    assert sim.read("/sys/module/test_klp_atomic_replace/refcnt") == "1"
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_livepatch") is None


def test_force_is_refused_without_a_transition():
    sim = Sim()
    sim.sh("load_lp test_klp_livepatch")
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/force", "1\n") == -22
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/force", "0\n") == 2


def test_writing_the_opposite_value_reverses_the_transition():
    sim = stalled_busy()
    assert sim.read("/sys/kernel/livepatch/test_klp_callbacks_demo/enabled") == "1"
    assert sim.write("/sys/kernel/livepatch/test_klp_callbacks_demo/enabled", "1\n") == -22
    assert sim.write("/sys/kernel/livepatch/test_klp_callbacks_demo/enabled", "0\n") == 2
    assert sim.read("/sys/kernel/livepatch/test_klp_callbacks_demo/enabled") == "0"
    assert sim.klp_lines()[-2:] == [
        "livepatch: 'test_klp_callbacks_demo': reversing transition from patching to unpatching",
        "livepatch: 'test_klp_callbacks_demo': starting unpatching transition",
    ]
    # Reverse it again: back to patching, and it still cannot complete.
    assert sim.write("/sys/kernel/livepatch/test_klp_callbacks_demo/enabled", "1\n") == 2
    assert (
        sim.klp_lines()[-1] == "livepatch: 'test_klp_callbacks_demo': starting patching transition"
    )
    sim.tick(3)
    assert sim.read("/sys/kernel/livepatch/test_klp_callbacks_demo/transition") == "1"
    sim.write("/sys/kernel/livepatch/test_klp_callbacks_demo/enabled", "0\n")
    sim.tick(2)
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_callbacks_demo") is None


def test_loading_a_patch_during_a_transition_is_busy_and_silent():
    sim = stalled_busy()
    before = len(sim.kernel.log.records)
    status, _, err = sim.rt.shell(["insmod", "test_modules/test_klp_livepatch.ko"])
    assert status == 1 and err.endswith("Device or resource busy\n")
    new = sim.kernel.log.dmesg()[before:]
    assert not any("enabling patch" in line for line in new)
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_livepatch") is None


def test_disabling_another_patch_during_a_transition_is_busy():
    sim = Sim()
    sim.sh(
        "load_lp test_klp_livepatch\n"
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo"
    )
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n") == -16


def test_kstrtobool_values_for_enabled():
    sim = Sim()
    sim.sh("load_lp test_klp_livepatch")
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "maybe\n") == -22
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "on\n") == -22
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "off\n") == 4


def test_cpu_bound_kthread_switches_in_cond_resched_only_before_6_16():
    # 676e8cf70cb0 (6.16) moved the switch from cond_resched() to
    # __schedule() of freezable sleeps: a busy kthread no longer helps itself.
    for profile, done in (("6.12", True), ("7.1", False)):
        sim = Sim(profile)
        sim.sh(
            "spawn_task crunch --kthread --busy version_proc_show\n"
            "load_lp_nowait test_klp_livepatch"
        )
        sim.tick(5)
        state = sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition")
        assert state == ("0" if done else "1"), profile
