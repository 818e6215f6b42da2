"""Module coming/going and ftrace conflicts where a transcript cannot show
the state in between: refused loads mid-transition, a busy target module
unloaded under a stalled transition, and IPMODIFY conflicts in both orders."""

import pytest

from harness import Sim

DEMO = "/sys/kernel/livepatch/test_klp_callbacks_demo"


def stalled():
    sim = Sim()
    sim.sh(
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo"
    )
    sim.tick(2)
    assert sim.read(f"{DEMO}/transition") == "1"
    return sim


def test_module_load_refused_mid_transition():
    sim = stalled()
    sim.write("/sys/module/test_klp_callbacks_demo/parameters/pre_patch_ret", "-19\n")
    status, _, err = sim.rt.shell(["insmod", "test_modules/test_klp_callbacks_mod.ko"])
    assert (status, err) == (
        1,
        "insmod: ERROR: could not insert module "
        "test_modules/test_klp_callbacks_mod.ko: No such device\n",
    )
    assert sim.klp_lines()[-2:] == [
        "livepatch: pre-patch callback failed for object 'test_klp_callbacks_mod'",
        "livepatch: patch 'test_klp_callbacks_demo' failed for module 'test_klp_callbacks_mod', "
        "refusing to load module 'test_klp_callbacks_mod'",
    ]
    assert sim.kernel.modules.find_module("test_klp_callbacks_mod") is None
    assert sim.read(f"{DEMO}/test_klp_callbacks_mod/patched") == "0"
    # The transition is still stalled on the busy module, untouched.
    assert sim.read(f"{DEMO}/transition") == "1"
    assert sim.klp.transition_patch.name == "test_klp_callbacks_demo"


def test_module_load_mid_transition_defers_post_patch_to_completion():
    sim = stalled()
    sim.sh("load_mod test_klp_callbacks_mod")
    log = sim.kernel.log.dmesg()
    assert (
        "test_klp_callbacks_demo: post_patch_callback: test_klp_callbacks_mod -> "
        "[MODULE_STATE_COMING] Full formed, running module_init" not in log
    )
    sim.sh("unload_mod test_klp_callbacks_busy")  # ends the stall
    sim.tick(2)
    assert sim.read(f"{DEMO}/transition") == "0"
    log = sim.kernel.log.dmesg()
    start = log.index("livepatch: 'test_klp_callbacks_demo': completing patching transition")
    assert log[start:] == [
        "livepatch: 'test_klp_callbacks_demo': completing patching transition",
        "test_klp_callbacks_demo: post_patch_callback: vmlinux",
        "test_klp_callbacks_demo: post_patch_callback: test_klp_callbacks_mod -> "
        "[MODULE_STATE_LIVE] Normal state",
        "livepatch: 'test_klp_callbacks_demo': patching complete",
    ]


def test_rmmod_of_the_busy_target_ends_the_stalled_transition():
    sim = stalled()
    mark = len(sim.kernel.log.records)
    sim.sh("unload_mod test_klp_callbacks_busy")
    assert sim.kernel.log.dmesg()[mark:] == [
        "% rmmod test_klp_callbacks_busy",
        "test_klp_callbacks_busy: busymod_work_func exit",
        "test_klp_callbacks_busy: test_klp_callbacks_busy_exit",
        # The patch is in transition: no pre_unpatch, but post_unpatch.
        "livepatch: reverting patch 'test_klp_callbacks_demo' on unloading module "
        "'test_klp_callbacks_busy'",
        "test_klp_callbacks_demo: post_unpatch_callback: test_klp_callbacks_busy -> "
        "[MODULE_STATE_GOING] Going away",
    ]
    assert sim.read(f"{DEMO}/transition") == "1"
    sim.tick(1.5)
    assert sim.read(f"{DEMO}/transition") == "0"
    assert sim.klp_lines()[-1] == "livepatch: 'test_klp_callbacks_demo': patching complete"
    assert sim.read(f"{DEMO}/test_klp_callbacks_busy/patched") == "0"


def test_force_on_a_transition_stalled_by_a_busy_module():
    sim = stalled()
    kworker = sim.kernel.kworker
    assert kworker.patch_state == 0
    sim.write(f"{DEMO}/force", "1\n")
    assert kworker.patch_state == 1  # switched although it sleeps in the old code
    sim.tick(1.5)
    assert sim.read(f"{DEMO}/transition") == "0"
    # The forced patch is the transition patch; only unpatching pins it.
    sim.sh("unload_mod test_klp_callbacks_busy")
    sim.sh("disable_lp test_klp_callbacks_demo\nunload_lp test_klp_callbacks_demo")


@pytest.mark.parametrize("profile, kprobe_ret", [("7.1", 0), ("6.12", -16)])
def test_ipmodify_livepatch_first_then_post_handler_kprobe(profile, kprobe_ret):
    sim = Sim(profile)
    sim.sh("load_lp test_klp_livepatch")
    status, _, err = sim.rt.shell(
        ["insmod", "test_modules/test_klp_kprobe.ko", "has_post_handler=1"]
    )
    kprobes = sim.system.kprobes
    if kprobe_ret == 0:
        # 587e8e6d640b (6.14): registration returns 0, but the probe is not
        # armed, not listed, and never fires.
        assert status == 0
        assert kprobes.probes == []
        assert sim.read("/sys/kernel/debug/kprobes/list") == ""
    else:
        assert err.endswith("Device or resource busy\n")
        assert kprobes.probes == []
    assert sim.read("/proc/cmdline") == "test_klp_livepatch: this has been live patched"


def test_ipmodify_post_handler_kprobe_first_then_livepatch():
    sim = Sim()
    sim.sh("load_mod test_klp_kprobe has_post_handler=1")
    status, _, err = sim.rt.shell(["insmod", "test_modules/test_klp_livepatch.ko"])
    assert err.endswith("Device or resource busy\n")
    assert (
        "livepatch: failed to register ftrace handler for function 'cmdline_proc_show' "
        "(-16)" in sim.klp_lines()
    )
    (kp,) = sim.system.kprobes.probes
    hits = kp.hits  # insmod itself reads /proc/cmdline (kmod_new())
    sim.read("/proc/cmdline")
    assert kp.hits == hits + 1


def test_kprobe_without_post_handler_coexists_and_fires():
    sim = Sim()
    sim.sh("load_mod test_klp_kprobe has_post_handler=0\nload_lp test_klp_livepatch")
    (kp,) = sim.system.kprobes.probes
    hits = kp.hits
    assert sim.read("/proc/cmdline") == "test_klp_livepatch: this has been live patched"
    assert kp.hits == hits + 1


def test_ftrace_enabled_sysctl_refused_while_a_livepatch_is_registered():
    sim = Sim()
    sim.sh("load_lp test_klp_livepatch")
    assert sim.write("/proc/sys/kernel/ftrace_enabled", "0\n") == -16
    sim.sh("disable_lp test_klp_livepatch")
    assert sim.write("/proc/sys/kernel/ftrace_enabled", "0\n") == 2
