"""The consistency model where a transcript cannot show it: per-task
states in the middle of a transition, the retry timer, signals, force and
reversal."""

import pytest

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


# -- what the transition code must do for tasks that the transcripts do not show


def transition_of(sim, patch):
    return sim.read(f"/sys/kernel/livepatch/{patch}/transition")


def test_a_patched_function_deeper_in_the_stack_blocks_the_switch():
    # klp_check_stack() walks every frame, not just the innermost: the
    # reader sleeps in schedule(), called from inside cmdline_proc_show.
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(
        f"sleep_task {pid} vfs_read seq_read_iter cmdline_proc_show schedule_timeout schedule\n"
        "load_lp_nowait test_klp_livepatch"
    )
    reader = sim.kernel.sched.tasks[pid]
    assert [s.name for s in reader.stack[-3:]] == [
        "cmdline_proc_show",
        "schedule_timeout",
        "schedule",
    ]
    sim.tick(10)
    assert (transition_of(sim, "test_klp_livepatch"), reader.patch_state) == ("1", 0)
    assert reader.patch_pending
    sim.sh(f"wake_task {pid}")
    sim.tick(1)
    assert transition_of(sim, "test_klp_livepatch") == "0"
    # Unpatching: the new code, deep in the stack, blocks the way back.
    sim.sh(f"sleep_task {pid} vfs_read cmdline_proc_show schedule")
    assert reader.stack[-2].name == "livepatch_cmdline_proc_show"
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    sim.tick(10)
    assert (transition_of(sim, "test_klp_livepatch"), reader.patch_state) == ("1", 1)
    sim.sh(f"wake_task {pid}")
    sim.tick(1)
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_livepatch") is None


def test_the_outermost_frame_counts_too():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(
        f"sleep_task {pid} cmdline_proc_show vfs_read schedule\nload_lp_nowait test_klp_livepatch"
    )
    sim.tick(5)
    assert sim.kernel.sched.tasks[pid].patch_state == 0


def test_a_child_forked_mid_transition_inherits_tif_patch_pending():
    # klp_copy_process(): a child of a task that has not switched yet is
    # unswitched and pending too; without the flag it would never switch at
    # its return to user space, and a child that never sleeps (busy on a
    # CPU, so klp_try_switch_task() finds it running) would hold the
    # transition for good.
    sim = Sim()
    pid = int(sim.sh("spawn_task parent"))
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    sched = sim.kernel.sched
    parent = sched.tasks[pid]
    assert (parent.patch_state, parent.patch_pending) == (0, True)
    child = sched.spawn("child", parent=parent)
    assert (child.patch_state, child.patch_pending) == (0, True)
    getppid = sim.kernel.kallsyms.lookup_name("__x64_sys_getppid")
    child.loop = lambda t: sim.kernel.call(t, getppid)
    sched.set_running(child, True)
    sim.sh(f"wake_task {pid}")
    sim.tick(2)
    assert transition_of(sim, "test_klp_livepatch") == "0"
    assert (child.patch_state, child.patch_pending) == (-1, False)
    # A child forked by a task that has switched is switched and not pending.
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    shell = sched.current
    assert (shell.patch_state, shell.patch_pending) == (0, False)
    other = sched.spawn("other", parent=shell)
    assert (other.patch_state, other.patch_pending) == (0, False)


def test_reversing_clears_every_pending_flag_before_starting_again():
    # klp_reverse_transition(): the tasks still in the initial state are
    # already in the new target state; a stale TIF_PATCH_PENDING on them
    # would trip klp_complete_transition()'s WARN_ON_ONCE.
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    reader = sim.kernel.sched.tasks[pid]
    kworker = next(t for t in sim.kernel.sched.tasks.values() if t.comm == "kworker/0:1")
    sim.tick(2)
    assert (reader.patch_state, reader.patch_pending) == (0, True)
    assert (kworker.patch_state, kworker.patch_pending) == (1, False)
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    assert (reader.patch_state, reader.patch_pending) == (0, False)
    assert (kworker.patch_state, kworker.patch_pending) == (1, True)
    sim.tick(2)
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_livepatch") is None
    assert all(not t.patch_pending for t in sim.kernel.sched.all_tasks())
    assert not any("cut here" in line for line in sim.kernel.log.dmesg())


def test_a_switched_task_is_no_longer_pending():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    sim.tick(1.5)
    switched = [t for t in sim.kernel.sched.all_tasks() if t.patch_state == 1]
    assert len(switched) == len(list(sim.kernel.sched.all_tasks())) - 1
    assert not any(t.patch_pending for t in switched)
    assert sim.kernel.sched.tasks[pid].patch_pending


WARN_END = "---[ end trace 0000000000000000 ]---"


def splats(sim):
    """Each WARN splat in dmesg: its WARNING line."""
    log = sim.kernel.log.dmesg()
    return [log[i + 1] for i, line in enumerate(log) if line.startswith("------------[ cut here")]


@pytest.mark.kernel_warns
def test_completing_with_a_task_still_pending_warns_once():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    reader = sim.kernel.sched.tasks[pid]
    reader.patch_state = 1  # switched behind the transition code's back
    sim.tick(1)
    assert transition_of(sim, "test_klp_livepatch") == "0"
    assert splats(sim) == [
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:132 "
        "klp_complete_transition+0x1d4/0x2f0"
    ]
    log = sim.kernel.log.dmesg()
    start = log.index("------------[ cut here ]------------")
    assert log[start + 2] == "Modules linked in: test_klp_livepatch(OEK)"
    assert log[start + 3] == WARN_END
    assert log[start + 4] == "livepatch: 'test_klp_livepatch': patching complete"
    assert reader.patch_state == -1  # the kernel warns and goes on
    # WARN_ON_ONCE: the next transition with the same fault is silent.
    sim.sh(f"sleep_task {pid} cmdline_proc_show")
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    reader.patch_state = 0
    sim.tick(1)
    assert len(splats(sim)) == 1
    # An idle task still pending has a site of its own.
    sim = Sim()
    sim.sh(
        f"spawn_task reader\nsleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch"
    )
    idle = sim.kernel.sched.idle[1]
    assert idle.patch_state == 1
    idle.patch_pending = True
    sim.sh(f"wake_task {pid}")
    sim.tick(1)
    assert splats(sim) == [
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:139 "
        "klp_complete_transition+0x248/0x2f0"
    ]


@pytest.mark.kernel_warns
def test_starting_with_a_task_not_idle_warns():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.kernel.sched.tasks[pid].patch_state = 1  # left over from no transition
    sim.sh("load_lp test_klp_livepatch")
    assert splats(sim) == [
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:600 "
        "klp_init_transition+0x15f/0x1b0"
    ]
    sim.kernel.sched.idle[0].patch_state = 0
    sim.sh("disable_lp test_klp_livepatch")
    assert splats(sim)[1:] == [
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:610 "
        "klp_init_transition+0x166/0x1b0"
    ]


@pytest.mark.kernel_warns
def test_transition_functions_warn_on_the_wrong_target_state():
    from klpsim.livepatch import transition
    from klpsim.livepatch.structs import KLP_TRANSITION_IDLE, KLP_TRANSITION_UNPATCHED

    sim = Sim()
    sim.sh("load_lp test_klp_livepatch")
    klp = sim.klp
    # klp_cancel_transition() is only for a patching transition not started.
    transition.klp_cancel_transition(klp)
    assert klp.target_state == KLP_TRANSITION_IDLE
    # klp_init_transition() while a transition is set up already.
    patch = klp.patches[0]
    klp.target_state = KLP_TRANSITION_UNPATCHED
    klp.transition_patch = patch
    transition.klp_cancel_transition(klp)  # once: no second splat
    transition.klp_init_transition(klp, patch, KLP_TRANSITION_UNPATCHED)
    assert splats(sim) == [
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:167 "
        "klp_cancel_transition+0x53/0x60",
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:581 "
        "klp_init_transition+0x1a2/0x1b0",
    ]
    klp.target_state = KLP_TRANSITION_IDLE
    with pytest.raises(ValueError):  # no transition event for an idle target
        transition.klp_start_transition(klp)
    assert splats(sim)[2:] == [
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/transition.c:535 "
        "klp_start_transition+0x12d/0x140"
    ]


def test_force_on_a_patch_that_is_not_in_transition_is_einval_and_changes_nothing():
    # force_store(): only the transition patch may be forced; another
    # patch's force file refuses 1 (and takes 0) while the transition runs.
    sim = Sim()
    sim.sh(
        "load_lp test_klp_livepatch\n"
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo"
    )
    before = sim.kernel.log.dmesg()
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/force", "1\n") == -22
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/force", "0\n") == 2
    assert sim.write("/sys/kernel/livepatch/test_klp_callbacks_demo/force", "x\n") == -22
    assert sim.kernel.log.dmesg() == before
    pending = [t for t in sim.kernel.sched.all_tasks() if t.patch_pending]
    assert [t.comm for t in pending] == ["kworker/0:1"]
    sim.tick(3)
    assert transition_of(sim, "test_klp_callbacks_demo") == "1"
    assert not any(p.forced for p in sim.klp.patches)


def test_enabled_reads_0_through_the_unpatching_transition():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"load_lp test_klp_livepatch\nsleep_task {pid} cmdline_proc_show")
    sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "0\n")
    assert transition_of(sim, "test_klp_livepatch") == "1"
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/enabled") == "0"


def test_a_replace_patch_drops_its_nop_objects_when_it_completes(tmp_path):
    # klp_add_object_nops(): an object only the replaced patch had is a
    # dynamic object of the new patch, with nops, until klp_discard_nops().
    mods = tmp_path / "test_modules"
    mods.mkdir()
    (mods / "tgt.toml").write_text('functions = ["tgt_show"]\n')
    (mods / "lp_mod.toml").write_text(
        'livepatch = true\n[[objects]]\nname = "tgt"\nfuncs = [{ old_name = "tgt_show" }]\n'
    )
    (mods / "lp_rep.toml").write_text(
        "livepatch = true\nreplace = true\n"
        '[[objects]]\nname = "vmlinux"\nfuncs = [{ old_name = "cmdline_proc_show" }]\n'
    )
    sim = Sim(module_dirs=[mods])
    pid = int(sim.sh("load_mod tgt\nload_lp lp_mod\nspawn_task reader"))
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait lp_rep")
    base = "/sys/kernel/livepatch/lp_rep"
    assert {"tgt", "vmlinux"} <= set(sim.kernel.fs.listdir(base))
    (tgt,) = [o for o in sim.klp.transition_patch.obj_list if o.name == "tgt"]
    assert tgt.dynamic and all(f.nop for f in tgt.func_list)
    sim.sh(f"wake_task {pid}")
    sim.tick(1)
    assert transition_of(sim, "lp_rep") == "0"
    assert "tgt" not in sim.kernel.fs.listdir(base)
    assert [o.name for o in sim.klp.patches[-1].obj_list] == [None]


def test_reversing_a_replace_patch_leaves_the_patches_it_would_have_replaced():
    # klp_complete_transition() unpatches the replaced patches only when a
    # replace patch completes *patching*: reversed, it takes nothing along.
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(
        f"load_lp test_klp_livepatch\nsleep_task {pid} cmdline_proc_show\n"
        "load_lp_nowait test_klp_atomic_replace replace=1"
    )
    sim.write("/sys/kernel/livepatch/test_klp_atomic_replace/enabled", "0\n")
    sim.sh(f"wake_task {pid}")
    sim.tick(2)
    assert sim.kernel.fs.lookup("/sys/kernel/livepatch/test_klp_atomic_replace") is None
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/enabled") == "1"
    assert sim.read("/proc/cmdline") == "test_klp_livepatch: this has been live patched"
    assert [p.name for p in sim.klp.patches] == ["test_klp_livepatch"]
