"""The simulated kernel's own pieces: dynamic debug, module parameters,
sysfs permissions, procfs and kallsyms."""

import pytest

from harness import ROOT, Sim
from klpsim.kernel.fs import mode_string
from klpsim.kernel.params import ParamSpec, kstrtobool


def test_dynamic_debug_control_enables_the_per_task_messages():
    sim = Sim()
    pid = int(sim.sh("spawn_task reader"))
    sim.write("/sys/kernel/debug/dynamic_debug/control", "func klp_try_switch_task +p\n")
    sim.sh(f"sleep_task {pid} cmdline_proc_show\nload_lp_nowait test_klp_livepatch")
    lines = sim.klp_lines()
    assert (
        f"livepatch: klp_try_switch_task: reader:{pid} is sleeping on function "
        "cmdline_proc_show" in lines
    )
    assert "livepatch: klp_try_switch_task: swapper/1:0 is running" in lines
    sim.kernel.sched.tasks[pid].reliable = False  # stack_trace_save_tsk_reliable() fails
    sim.tick(1)
    assert (
        f"livepatch: klp_try_switch_task: reader:{pid} has an unreliable stack" in sim.klp_lines()
    )
    sim.write("/sys/kernel/debug/dynamic_debug/control", "file kernel/livepatch/* -p\n")
    mark = len(sim.klp_lines())
    sim.tick(2)
    assert sim.klp_lines()[mark:] == []  # the retries still fail, now silently


def test_kstrtobool_and_module_parameter_parsing():
    assert [kstrtobool(s) for s in ("1", "y", "Yes", "true", "on")] == [True] * 5
    assert [kstrtobool(s) for s in ("0", "n", "F", "off")] == [False] * 4
    assert kstrtobool("") == -22 and kstrtobool("x") == -22 and kstrtobool("o") == -22
    p = ParamSpec("klp_pids", "int_array", 0, [])
    assert p.parse("1,2,3") == (0, [1, 2, 3])
    assert p.parse("1,x")[0] == -22
    b = ParamSpec("has_post_handler", "bool", 0o444, True)
    assert b.parse("false") == (0, False) and b.format(True) == "Y"
    i = ParamSpec("pre_patch_ret", "int", 0o644, 0)
    assert i.parse("-19\n") == (0, -19) and i.parse("0x10") == (0, 16)


def test_bad_module_parameter_refuses_the_load():
    sim = Sim()
    status, _, err = sim.rt.shell(
        ["insmod", "test_modules/test_klp_callbacks_demo.ko", "pre_patch_ret=abc"]
    )
    assert status == 1 and err.endswith("Invalid parameters\n")
    assert (
        "test_klp_callbacks_demo: `abc' invalid for parameter `pre_patch_ret'"
        in sim.kernel.log.dmesg()
    )
    sim.sh("load_mod test_klp_callbacks_mod bogus=1")
    assert "test_klp_callbacks_mod: unknown parameter 'bogus' ignored" in sim.kernel.log.dmesg()


def test_sysfs_permissions_hold_for_root():
    sim = Sim()
    sim.sh("load_lp test_klp_livepatch")
    base = "/sys/kernel/livepatch/test_klp_livepatch"
    assert sim.write(f"{base}/transition", "1\n") == -13  # EACCES
    assert sim.kernel.fs.read(f"{base}/force") == -13
    assert mode_string(sim.kernel.fs.lookup(base).mode) == "drwxr-xr-x"
    status, _, err = sim.rt.shell(["cat", f"{base}/force"])
    assert (status, err) == (1, f"cat: {base}/force: Permission denied\n")


def test_proc_kallsyms_lists_module_functions_and_kprobe_ftrace_ops():
    sim = Sim()
    sim.sh("load_lp test_klp_livepatch")
    text = sim.read("/proc/kallsyms")
    assert " t livepatch_cmdline_proc_show\t[test_klp_livepatch]" in text
    assert text.count(" t cmdline_proc_show\n") == 1
    assert " d kprobe_ftrace_ops" in text
    assert text.count(" t init_once\n") == 2  # a duplicated static: sympos 1 and 2


def test_sympos_zero_and_one_are_the_same_only_since_6_19():
    # klp_find_func(), 139560e8b973: nops of an atomic replace match a
    # function given with sympos 0 to the same function given with sympos 1.
    from klpsim.livepatch.core import klp_find_func
    from klpsim.livepatch.structs import KlpFunc, KlpObject

    obj = KlpObject(None, [])
    obj.func_list = [KlpFunc("cmdline_proc_show", None, 1)]
    for profile, same in (("7.1", True), ("6.12", True), ("6.1", False)):
        klp = Sim(profile).klp
        assert (
            klp_find_func(klp, obj, KlpFunc("cmdline_proc_show", None, 0)) is not None
        ) == same, profile


def test_kstrtox_follows_the_kernel():
    from klpsim.kernel.params import kstrtoint, kstrtoull

    assert kstrtoull("010") == 8 and kstrtoull("0x1f\n") == 31 and kstrtoull("+5") == 5
    assert [kstrtoull(s) for s in ("0b11", "1_000", " 5", "", "0x", "08")] == [-22] * 6
    assert kstrtoint("-19") == (0, -19)
    assert kstrtoint("-1", 0, 2**32 - 1) == (-22, 0)  # kstrtouint() takes no sign
    assert kstrtoint("4294967296", 0, 2**32 - 1) == (-34, 0)
    # kstrtoll() hands what follows '-' to _kstrtoull(), which takes no '+'.
    assert kstrtoint("-+1") == (-22, 0) and kstrtoint("+1") == (0, 1)
    # _kstrtoull(): an overflow is -ERANGE before the trailing junk is seen.
    assert kstrtoull("99999999999999999999999x") == -34 and kstrtoull("18446744073709551616") == -34
    assert kstrtoull("18446744073709551615") == 2**64 - 1 and kstrtoull("5\n\n") == -22
    assert kstrtoint("-2147483648") == (0, -(2**31)) and kstrtoint("2147483648") == (-34, 0)


def test_enabled_and_disabled_are_booleans_since_6_16():
    # ae5b3500856f: kstrtobool() reads e/E and d/D.
    for profile, status in (("7.1", 9), ("6.12", -22)):
        sim = Sim(profile)
        sim.sh("load_lp test_klp_livepatch")
        assert (
            sim.write("/sys/kernel/livepatch/test_klp_livepatch/enabled", "disabled\n") == status
        ), profile


def test_parse_args_reports_every_bad_parameter_and_returns_the_last_error():
    sim = Sim()
    status, _, err = sim.rt.shell(
        [
            "insmod",
            "test_modules/test_klp_callbacks_busy.ko",
            "block_transition=maybe",
            "block-transition=x",
            "async_probe",
            "dyndbg=+p",
            "no-such=1",
        ]
    )
    log = sim.kernel.log.dmesg()
    assert "test_klp_callbacks_busy: `maybe' invalid for parameter `block_transition'" in log
    assert "test_klp_callbacks_busy: `x' invalid for parameter `block-transition'" in log
    assert "test_klp_callbacks_busy: unknown parameter 'no-such' ignored" in log
    assert not any("async_probe" in line or "dyndbg" in line for line in log)
    assert status == 1 and err.endswith("Invalid parameters\n")


@pytest.mark.kernel_warns
def test_shadow_error_paths_log_and_return_null():
    sim = Sim()
    shadow = sim.klp.shadow
    obj = object()
    assert shadow.alloc(obj, 7, 8) is not None
    assert shadow.alloc(obj, 7, 8) is None
    log = sim.kernel.log.dmesg()
    assert log[-5] == "------------[ cut here ]------------"
    assert log[-4] == f"Duplicate shadow variable <{sim.klp.kernel_ptr(obj)}, 7>"
    assert log[-3] == (
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/shadow.c:156 "
        "__klp_shadow_get_or_alloc+0x1a8/0x1e0"
    )
    assert log[-2] == "Modules linked in:"  # print_modules(), none loaded
    other, seen = object(), []
    assert shadow.get_or_alloc(other, 9, 8, ctor=lambda o, d, c: seen.append(o) or -12) is None
    assert seen == [other]  # the ctor gets the object the variable shadows
    assert sim.kernel.log.dmesg()[-1] == (
        f"livepatch: Failed to construct shadow variable <{sim.klp.kernel_ptr(other)}, 9> (-12)"
    )
    assert shadow.get(other, 9) is None


def test_cpu_bound_kthread_never_switches_itself_before_6_4():
    sim = Sim("6.1")
    sim.sh(
        "spawn_task crunch --kthread --busy version_proc_show\nload_lp_nowait test_klp_livepatch"
    )
    sim.tick(16)
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "1"
    assert "livepatch: signaling remaining tasks" in sim.klp_lines()


@pytest.mark.kernel_warns
def test_klp_get_prev_state_outside_a_transition_warns_once():
    sim = Sim()
    get_prev = sim.kernel.exports["klp_get_prev_state"]
    assert get_prev(1) is None and get_prev(1) is None
    log = sim.kernel.log.dmesg()
    assert log.count("------------[ cut here ]------------") == 1
    start = log.index("------------[ cut here ]------------")
    assert log[start:] == [  # WARN_ON_ONCE(): no message of its own
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 1000 at kernel/livepatch/state.c:64 klp_get_prev_state+0x61/0x70",
        "Modules linked in:",
        "---[ end trace 0000000000000000 ]---",
    ]


def test_vfs_refuses_to_treat_a_file_as_a_directory():
    fs = Sim().kernel.fs
    with pytest.raises(NotADirectoryError, match="/proc/cmdline"):
        fs.create_file("/proc/cmdline/show", 0o444, lambda: "")
    with pytest.raises(NotADirectoryError, match="/proc/cmdline"):
        fs.mkdir("/proc/cmdline")
    assert fs.read("/proc/cmdline").startswith("BOOT_IMAGE=")  # untouched
    assert fs.listdir("/proc/cmdline") == -20  # ENOTDIR


def test_spawn_refuses_an_unknown_frame():
    kernel = Sim().kernel
    with pytest.raises(LookupError, match="no vmlinux function no_such_func"):
        kernel.spawn("t", stack=("schedule", "no_such_func"))
    assert [t.comm for t in kernel.sched.tasks.values()].count("t") == 0


def test_klp_shadow_free_all_frees_only_its_id():
    ex = Sim().kernel.exports
    objs = [object(), object()]
    for obj in objs:
        for id in (1, 2):
            assert ex["klp_shadow_alloc"](obj, id, 8, "GFP_KERNEL", None, None) is not None
    freed = []
    ex["klp_shadow_free_all"](1, lambda obj, data: freed.append(obj))
    assert freed == objs
    assert [ex["klp_shadow_get"](obj, 1) for obj in objs] == [None, None]
    assert all(ex["klp_shadow_get"](obj, 2) is not None for obj in objs)
    ex["klp_shadow_free"](objs[0], 2, None)
    assert ex["klp_shadow_get"](objs[0], 2) is None
    assert ex["klp_shadow_get"](objs[1], 2) is not None


def test_klp_get_prev_state_is_the_newest_older_patch_s(tmp_path):
    # Three non-cumulative patches carry state 1 in versions 1, 2 and 3: the
    # third's callbacks see the second's state, the newest before it.
    mods = tmp_path / "test_modules"
    mods.mkdir()
    for v, func in ((1, "cmdline_proc_show"), (2, "meminfo_proc_show"), (3, "version_proc_show")):
        (mods / f"lp_v{v}.toml").write_text(
            "livepatch = true\n"
            f'[[objects]]\nname = "vmlinux"\nfuncs = [{{ old_name = "{func}" }}]\n'
            f"[[states]]\nid = 1\nversion = {v}\n"
        )
    sim = Sim(module_dirs=[mods])
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"load_lp lp_v1\nload_lp lp_v2\nsleep_task {pid} version_proc_show")
    sim.sh("load_lp_nowait lp_v3")
    prev = sim.kernel.exports["klp_get_prev_state"]
    assert sim.klp.transition_patch.name == "lp_v3"
    assert prev(1).version == 2
    assert prev(1) is sim.klp.patches[1].states[0]
    assert prev(2) is None


def test_klp_enable_patch_refuses_what_a_module_cannot_patch_with():
    from klpsim.livepatch.structs import KlpFunc, KlpObject, KlpPatch

    sim = Sim()
    sim.sh("load_lp test_klp_livepatch\nload_mod test_klp_callbacks_mod")
    enable = sim.kernel.exports["klp_enable_patch"]
    lp = sim.kernel.modules.find_module("test_klp_livepatch")
    plain = sim.kernel.modules.find_module("test_klp_callbacks_mod")
    new = sim.kernel.kallsyms.lookup_name("version_proc_show")
    assert enable(KlpPatch(lp, None)) == -22  # no objs
    assert enable(KlpPatch(lp, [KlpObject(None, None)])) == -22  # an object without funcs
    assert enable(KlpPatch(plain, [KlpObject(None, [KlpFunc("cmdline_proc_show", new)])])) == -22
    assert sim.klp_lines()[-1] == (
        "livepatch: module test_klp_callbacks_mod is not marked as a livepatch module"
    )
    # A sysfs file without a store: root's write is refused, nothing changes.
    assert sim.write("/sys/kernel/livepatch/test_klp_livepatch/transition", "1\n") == -13
    assert sim.read("/sys/kernel/livepatch/test_klp_livepatch/transition") == "0"


def test_dev_null_is_there():
    """Found by klpsim fuzz on 6.12 (seed 101): 'cat FILE > /dev/null' is
    'No such file or directory' on a model without the null device."""
    sim = Sim("6.12")
    fs = sim.system.kernel.fs
    assert fs.read("/dev/null") == "" and fs.write("/dev/null", "x\n") == 2
    assert sim.run("cat /proc/version > /dev/null") == 0 and sim.err.getvalue() == ""


def test_proc_kallsyms_lists_vmlinux_before_the_modules():
    # kallsyms_show(): the core table (text and data), then module_kallsyms
    sim = Sim(module_dirs=[ROOT / "tests" / "scenarios" / "replace-set" / "test_modules"])
    sim.sh("load_mod tgt")
    lines = sim.read("/proc/kallsyms").splitlines()
    in_module = [line.endswith("]") for line in lines]
    assert True in in_module and in_module == sorted(in_module)
    assert any(" d " in line for line in lines)
