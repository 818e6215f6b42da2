"""Notes and status views: the model says why, in the words a user reads.

Each test drives a scenario and checks the note or view against what the
model's own state says at that point (the blocking task's stack, the
func_stack, the pinned modules), not only against a string.
"""

from pathlib import Path

from harness import ROOT, klpsim
from klpsim.livepatch.events import TransitionBlocked
from klpsim.session import Session

NOTE = "klpsim: note: "
KTHREAD = ROOT / "tests" / "scenarios" / "replace-set" / "kthread-holds-cumulative-replace.sh"


def notes(text: str) -> list[str]:
    return [line.removeprefix(NOTE) for line in text.splitlines() if line.startswith(NOTE)]


def output_of(transcript: str, command: str) -> list[str]:
    """What one ``$ COMMAND`` printed, up to the next command."""
    lines = transcript.splitlines()
    start = lines.index(f"$ {command}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("$ ")), len(lines))
    return lines[start:end]


def script(tmp_path: Path, text: str, *modules: str) -> Path:
    """A script in tmp_path, with the named TOML modules of the examples."""
    mods = tmp_path / "test_modules"
    mods.mkdir(exist_ok=True)
    for name in modules:
        for folder in (ROOT / "examples", ROOT / "tests" / "scenarios" / "replace-set"):
            src = folder / "test_modules" / f"{name}.toml"
            if src.exists():
                (mods / src.name).write_text(src.read_text())
                break
        else:
            raise AssertionError(f"no module {name}")
    path = tmp_path / "s.sh"
    path.write_text(text)
    return path


def test_sleeping_kthread_blocks_cumulative_replace_blocking_and_note_agree():
    r = klpsim("run", str(KTHREAD))
    assert r.status == 0, r.err
    blocking = output_of(r.out, "klp_blocking")
    task_line = (
        "1001 kloader: cmdline_proc_show is on its stack (lp_a:livepatch_cmdline_proc_show); "
        "'lp_c' reverts it (a nop)"
    )
    assert blocking == [
        "'lp_c' is patching; 1 task has not switched",
        task_line,
        "  > lp_a:livepatch_cmdline_proc_show",
    ]
    # The note after the stall says the same, once: 20 retries and a round of
    # signals changed nothing, so there is no second note.
    stall = notes("\n".join(output_of(r.out, "sleep 20")))
    assert stall == [
        "'lp_c' is still patching after 0.996 s; 1 task has not switched:",
        "  " + task_line,
    ]
    assert sum("still patching" in n for n in notes(r.out)) == 1
    # and the replace, once the kthread woke: lp_c has no cmdline fix
    assert "'lp_c' (set 0) replaced 'lp_a': back to the original: cmdline_proc_show" in notes(r.out)


def test_blocking_view_matches_the_task_stack():
    s = Session("replace-set", script_dir=KTHREAD.parent)
    s.run("load_lp lp_a\nspawn_task kloader --kthread\nsleep_task 1001 cmdline_proc_show\n"
          "load_lp_nowait lp_c\nsleep 2\nklp_blocking")  # fmt: skip
    task = s.kernel.sched.tasks[1001]
    (code,) = task.stack
    assert (code.owner.name, code.name) == ("lp_a", "livepatch_cmdline_proc_show")
    assert task.patch_state == 0 and s.klp.target_state == 1
    assert f"  > {code.owner.name}:{code.name}" in s.out.getvalue().splitlines()
    blocked = [
        r.event
        for r in s.system.events.records
        if isinstance(r.event, TransitionBlocked) and r.event.patch == "lp_c"
    ]
    assert blocked and all(
        [b.pid for b in e.blockers] == [1001] for e in blocked[1:]
    )  # the first try also waits for the idle tasks; every retry only for 1001


def test_a_note_when_the_blockers_change_and_not_at_every_retry(tmp_path):
    path = script(
        tmp_path,
        "load_lp lp_cmdline_v1\n"
        "spawn_task a\nspawn_task b\n"
        "sleep_task 1001 cmdline_proc_show\nsleep_task 1002 meminfo_proc_show\n"
        "load_lp_nowait lp_cmdline_v2\n"
        "sleep 5\nwake_task 1002\nsleep 5\nwake_task 1001\n"
        "loop_until grep -q '^0$' /sys/kernel/livepatch/lp_cmdline_v2/transition\n",
        "lp_cmdline_v1",
        "lp_cmdline_v2",
    )
    r = klpsim("run", str(path))
    assert r.status == 0, r.err
    stalls = [n for n in notes(r.out) if "still patching" in n]
    assert stalls == [
        "'lp_cmdline_v2' is still patching after 0.995 s; 2 tasks have not switched:",
        "'lp_cmdline_v2' is still patching after 5.995 s; 1 task has not switched:",
    ]
    # meminfo_proc_show is not patched by v1: 1002 runs the original there,
    # which v2 now patches
    assert "  1002 b: meminfo_proc_show is on its stack (vmlinux:meminfo_proc_show); " \
        "'lp_cmdline_v2' patches it" in notes(r.out)  # fmt: skip


def test_refused_while_another_patch_is_in_transition(tmp_path):
    path = script(
        tmp_path,
        "load_lp lp_cmdline_v1\nspawn_task reader\nsleep_task 1001 cmdline_proc_show\n"
        "load_lp_nowait lp_cmdline_v2\nload_failing_mod lp_hook\n",
        "lp_cmdline_v1",
        "lp_cmdline_v2",
        "lp_hook",
    )
    r = klpsim("run", str(path))
    assert "insmod: ERROR: could not insert module test_modules/lp_hook.ko: " \
        "Device or resource busy" in r.out  # fmt: skip
    assert (
        "'lp_hook' (set 1) refused (-EBUSY): 'lp_cmdline_v2' (set 0) is in transition; "
        "one transition at a time: wait until it completes"
    ) in notes(r.out)


def test_a_symbol_lookup_refusal_names_the_patch_the_object_and_the_count(tmp_path):
    mods = tmp_path / "test_modules"
    mods.mkdir()
    funcs = {
        "lp_nope": '"nope"',
        "lp_amb": '"show_device"',
        "lp_pos": '"show_device", old_sympos = 3',
    }
    for name, func in funcs.items():
        (mods / f"{name}.toml").write_text(
            f'livepatch = true\n[[objects]]\nname = "vmlinux"\nfuncs = [{{ old_name = {func} }}]\n'
        )
    path = tmp_path / "s.sh"
    path.write_text("".join(f"load_failing_mod {name}\n" for name in funcs))
    session = Session("6.12", transcript=True, script_dir=tmp_path)
    count = len(session.kernel.kallsyms.find(None, "show_device"))
    assert count == 2  # two static show_device in the model's vmlinux, as on Debian's
    r = klpsim("run", "--kernel", "6.12", str(path))
    assert notes(r.out) == [
        "'lp_nope' refused (-EINVAL): vmlinux has no symbol nope; "
        "a patched function must exist in its object",
        f"'lp_amb' refused (-EINVAL): vmlinux has {count} symbols show_device; old_sympos 0 "
        f"takes only a unique name: old_sympos 1 to {count} picks one, in kallsyms order",
        f"'lp_pos' refused (-EINVAL): vmlinux has {count} symbols show_device; "
        "old_sympos 3 is beyond them",
    ]
    # the log names the symbol; the note follows it, before insmod's error
    out = output_of(r.out, "load_failing_mod lp_pos")
    assert out[-3:-1] == [
        "[    0.002000] livepatch: symbol position 3 for symbol 'show_device' in object "
        "'vmlinux' not found",
        NOTE + notes(r.out)[2],
    ]


def test_forced_transition_names_the_pinned_modules():
    r = klpsim(
        "run", str(ROOT / "tests" / "scenarios" / "replace-set" / "force-marks-same-set-only.sh")
    )
    forced = [n for n in notes(r.out) if "forced" in n]
    assert forced == [
        "'test_klp_callbacks_demo': patching transition forced, every task switched, "
        "safe or not; pinned forever (rmmod refused, refcount kept): lp_a"
    ]
    # lp_b (set 1) is not pinned: the model agrees with the note
    s = Session("replace-set", script_dir=ROOT / "tests" / "scenarios" / "replace-set")
    s.run("load_lp lp_b\nload_lp lp_a\nload_mod test_klp_callbacks_busy block_transition=Y\n"
          "load_lp_nowait test_klp_callbacks_demo\n"
          "echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/force")  # fmt: skip
    forced_now = {p.name for p in s.klp.all_patches if p.forced}
    assert forced_now == {"lp_a"}


def test_forcing_a_non_replace_patch_pins_nothing(tmp_path):
    r = klpsim(
        "run",
        "--kernel",
        "7.1",
        str(ROOT / "tests" / "selftests" / "test-callbacks-09-busy-target-module.sh"),
    )
    assert r.status == 0
    s = Session("7.1")
    s.run(
        "load_mod test_klp_callbacks_busy block_transition=Y\n"
        "load_lp_nowait test_klp_callbacks_demo\nsleep 2\n"
        "echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/force"
    )
    from klpsim.livepatch.events import TransitionForced
    from klpsim.model.notes import forced_note

    (e,) = [r.event for r in s.system.events.records if isinstance(r.event, TransitionForced)]
    assert forced_note(e) == (
        "'test_klp_callbacks_demo': patching transition forced, every task switched, "
        "safe or not; no module is pinned"
    )
    assert not any(p.forced for p in s.klp.patches)


def test_replace_keeps_a_function_another_patch_still_patches():
    # replaceable: found_lp1 is not replaceable, found_lp2 is; found_lp3
    # (replace) replaces found_lp2 only, so meminfo stays with found_lp1.
    folder = ROOT / "tests" / "scenarios" / "replaceable"
    s = Session("replaceable", script_dir=folder, transcript=True)
    s.run("load_lp found_lp1\nload_lp found_lp2\nload_lp found_lp3 replace=1")
    got = [n for n in notes(s.out.getvalue()) if "replaced" in n]
    assert got == [
        "'found_lp3' replaced 'found_lp2': patched again: cmdline_proc_show; "
        "kept by 'found_lp1': meminfo_proc_show"
    ]
    (ops,) = [o for sym, o in s.klp.ops.items() if sym.name == "meminfo_proc_show"]
    assert [f.obj.patch.name for f in ops.func_stack] == ["found_lp1"]


def test_a_running_kthread_is_named_as_running(tmp_path):
    path = script(
        tmp_path,
        "spawn_task spinner --kthread --busy cmdline_proc_show\n"
        "load_lp_nowait lp_cmdline_v1\nsleep 2\nklp_blocking\n",
        "lp_cmdline_v1",
    )
    r = klpsim("run", "--kernel", "7.1", str(path))
    assert (
        "1001 spinner: running on a CPU; its stack cannot be checked while it runs"
        in notes(r.out)[1]
    )
    assert output_of(r.out, "klp_blocking")[:2] == [
        "'lp_cmdline_v1' is patching; 1 task has not switched",
        "1001 spinner: running on a CPU; its stack cannot be checked while it runs",
    ]


def test_attach_refusal_and_silence_are_noted(tmp_path):
    s = Session("7.1", transcript=True)
    s.run(
        "load_lp test_klp_livepatch\n"
        "bpf_attach fentry test_klp_livepatch:livepatch_cmdline_proc_show --name obs\n"
        "bpf_attach kprobe test_klp_livepatch:livepatch_cmdline_proc_show --override 0\n"
        "load_lp test_klp_atomic_replace replace=1\n"
    )
    got = notes(s.out.getvalue())
    assert (
        "kprobe test_klp_livepatch:livepatch_cmdline_proc_show refused (-EINVAL): "
        "livepatch_cmdline_proc_show is a livepatch's function, not on the error-injection "
        "list (overriding it needs RFC 2/4's CONFIG_KPROBE_OVERRIDE_KLP_FUNC, not merged)"
    ) in got
    silent = [n for n in got if n.startswith("obs ")]
    assert silent == [
        "obs (fentry test_klp_livepatch:livepatch_cmdline_proc_show) went silent: "
        "no call reaches livepatch_cmdline_proc_show: its patch is not in effect"
    ]


def test_status_views_on_mainline_show_replace_and_the_transition():
    s = Session("7.1")
    s.run(
        "load_lp test_klp_livepatch\nspawn_task reader\nsleep_task 1001 cmdline_proc_show\n"
        "load_lp_nowait test_klp_atomic_replace replace=1\nsleep 2\n"
        "klp_status\nfunc_stack cmdline_proc_show\n"
    )
    assert s.out.getvalue().splitlines()[1:] == [
        "status: in_progress ('test_klp_atomic_replace' patching)",
        "Loaded patch modules, in klp_patches order:",
        "PATCH                    STATE          REPLACE  ENABLED  TRANSITION  FORCED",
        "test_klp_livepatch       [enabled]      0        1        0           0",
        "test_klp_atomic_replace  [enabling...]  1        1        1           0",
        "func_stack of cmdline_proc_show, top first:",
        "  1  test_klp_atomic_replace  nop (the original)                              in transition",
        "  2  test_klp_livepatch       test_klp_livepatch:livepatch_cmdline_proc_show",
        "a patched task runs vmlinux:cmdline_proc_show (the original)",
        "an unpatched task runs test_klp_livepatch:livepatch_cmdline_proc_show",
    ]
    # what the view says each kind of task runs is what a call runs
    reader = s.kernel.sched.tasks[1001]
    assert reader.patch_state == 0
    sym = s.kernel.kallsyms.lookup_name("cmdline_proc_show")
    target, _ = s.kernel.resolve(reader, sym, [])
    assert (target.owner.name, target.name) == ("test_klp_livepatch", "livepatch_cmdline_proc_show")
    s.run("echo 1 > /sys/kernel/livepatch/test_klp_atomic_replace/force\nsleep 1\nklp_status")
    assert s.out.getvalue().splitlines()[-3:] == [
        "Loaded patch modules, in klp_patches order:",
        "PATCH                    STATE      REPLACE  ENABLED  TRANSITION  FORCED",
        "test_klp_atomic_replace  [enabled]  1        1        0           0",
    ]
    # the forced replace pinned the patch it replaced (freed now, module kept)
    assert [p.name for p in s.klp.all_patches if p.forced] == ["test_klp_livepatch"]
