"""What the tracefs transcripts cannot show: the aggregate kprobe's arming
state and user counts, kprobe_table order, multi-probe kprobe events, the
error_log's length, the profile hooks, and bad input to the new keys."""

import re
from pathlib import Path

import pytest

from harness import ROOT, Sim, klpsim
from klpsim.kernel.errno import EBUSY, EINVAL, ENOENT
from klpsim.kernel.fs import NotModelled
from klpsim.trace.kprobes import KPROBE_TABLE_SIZE, hash_ptr

MODULES = ROOT / "tests" / "scenarios" / "tracefs" / "test_modules"
KPROBE_EVENTS = "/sys/kernel/tracing/kprobe_events"


def sim(profile: str = "6.12") -> Sim:
    return Sim(profile, module_dirs=[MODULES])


def test_a_post_handler_probe_joining_an_armed_aggregate_is_not_rearmed():
    s = sim()
    kprobes = s.system.kprobes
    s.sh("load_mod test_klp_kp_pre\nload_mod test_klp_kp_post")
    pre, post = kprobes.probes
    ap = kprobes.get_kprobe(pre.addr, pre.addr_off)
    assert ap is not None and ap.aggr and ap.list == [post, pre]  # newest first
    assert ap.post_handler is not None  # add_new_kprobe() sets it ...
    assert kprobes.ftrace_ops.enabled and not kprobes.ipmodify_ops.enabled  # ... not re-armed
    assert (kprobes.ftrace_enabled, kprobes.ipmodify_enabled) == (1, 0)
    assert pre.armed and post.armed


def test_an_aggregate_armed_with_ipmodify_keeps_it_after_the_post_handler_leaves():
    s = sim()
    kprobes = s.system.kprobes
    s.sh("load_mod test_klp_kp_post\nload_mod test_klp_kp_pre\nunload_mod test_klp_kp_post")
    (pre,) = kprobes.probes
    ap = kprobes.get_kprobe(pre.addr, pre.addr_off)
    assert ap is not None and ap.post_handler is not None  # 5dd7caf0bdc5
    assert kprobes.ipmodify_ops.enabled and not kprobes.ftrace_ops.enabled
    s.sh("unload_mod test_klp_kp_pre")  # disarmed by the same ops: clean
    assert (kprobes.ftrace_enabled, kprobes.ipmodify_enabled) == (0, 0)
    assert not kprobes.ipmodify_ops.enabled and kprobes.probes == []


@pytest.mark.kernel_warns  # the kernel bug the scenario reproduces
def test_the_failed_disarm_leaves_the_counts_as_the_kernel_does():
    s = sim()
    kprobes = s.system.kprobes
    s.sh("load_mod test_klp_kp_pre\nload_mod test_klp_kp_post\nunload_mod test_klp_kp_post")
    (pre,) = kprobes.probes
    kprobes.unregister_kprobe(pre)  # through kprobe_ipmodify_ops: -ENOENT
    assert kprobes.ipmodify_enabled == -1 and kprobes.ftrace_enabled == 1
    assert pre.registered and pre.armed  # the unregister failed
    kprobes.unregister_kprobe(pre)  # fails again; the WARN is WARN_ONCE
    assert kprobes.ipmodify_enabled == -2
    assert sum("Failed to disarm kprobe-ftrace" in ln for ln in s.kernel.log.dmesg()) == 1


@pytest.mark.kernel_warns
def test_after_the_failed_disarm_a_post_handler_probe_takes_no_ipmodify():
    """As Debian's 6.12 showed: with kprobes disarmed first the last probe
    goes, kprobe_ftrace_ops stays registered on the function and
    kprobe_ipmodify_enabled is -1, so a new post_handler probe registers no
    ops, fires through the leftover kprobe_ftrace_ops, and a livepatch loads."""
    s = sim()
    kprobes = s.system.kprobes
    s.sh("load_mod test_klp_kp_pre\nload_mod test_klp_kp_post\nunload_mod test_klp_kp_post")
    assert s.write("/sys/kernel/debug/kprobes/enabled", "0\n") == -ENOENT
    s.sh("unload_mod test_klp_kp_pre")
    assert s.write("/sys/kernel/debug/kprobes/enabled", "1\n") > 0
    assert kprobes.probes == [] and kprobes.ipmodify_enabled == -1
    cmdline = s.kernel.vmlinux.lookup("cmdline_proc_show")
    assert kprobes.ftrace_ops.enabled and cmdline in kprobes.ftrace_ops.filter
    s.sh("load_mod test_klp_kp_post\nload_lp test_klp_livepatch")
    assert kprobes.ipmodify_enabled == 0 and not kprobes.ipmodify_ops.enabled
    n = len(s.kernel.log.dmesg())
    assert s.read("/proc/cmdline") == "test_klp_livepatch: this has been live patched"
    assert s.kernel.log.dmesg(notime=True)[n:] == [
        "test_klp_kp_post: kprobe0 pre_handler cmdline_proc_show",
        "test_klp_kp_post: kprobe0 post_handler cmdline_proc_show",
    ]


def test_kprobes_list_walks_the_hash_table():
    s = sim("7.1")
    kprobes = s.system.kprobes
    for name in ("cmdline_proc_show", "version_proc_show", "meminfo_proc_show"):
        assert kprobes.register_kprobe(kprobes.new_kprobe(name, lambda *a: 0)) == 0
    listed = [
        ln.split()[2].split("+")[0] for ln in s.read("/sys/kernel/debug/kprobes/list").split("\n")
    ]
    by_bucket = sorted(kprobes.probes, key=lambda kp: hash_ptr(kp.ip))
    assert listed == [kp.symbol_name for kp in by_bucket]
    assert all(0 <= hash_ptr(kp.ip) < KPROBE_TABLE_SIZE for kp in kprobes.probes)


def test_kprobe_events_append_a_probe_to_an_event_and_remove_siblings_first():
    s = sim()
    assert s.write(KPROBE_EVENTS, "p:ev cmdline_proc_show\n") > 0
    assert s.write(KPROBE_EVENTS, "p:ev version_proc_show\n", append=True) > 0
    tk = s.system.trace_kprobes
    assert tk is not None
    (event,) = tk.events.values()
    assert [p.symbol for p in event.probes] == ["cmdline_proc_show", "version_proc_show"]
    assert s.write("/sys/kernel/tracing/events/kprobes/ev/enable", "1\n") > 0
    # unregister_trace_kprobe(): a sibling goes even while enabled, the last one does not
    assert s.write(KPROBE_EVENTS, "-:ev\n", append=True) == -EBUSY
    assert [p.symbol for p in event.probes] == ["version_proc_show"]
    assert s.write(KPROBE_EVENTS, "\n") == -EBUSY  # O_TRUNC: nothing removed
    assert s.read(KPROBE_EVENTS) == "p:kprobes/ev version_proc_show"


def test_error_log_keeps_the_last_eight_errors():
    s = sim()
    for i in range(10):
        assert s.write(KPROBE_EVENTS, f"p:{i}bad cmdline_proc_show\n", append=True) == -EINVAL
    log = s.read("/sys/kernel/tracing/error_log").split("\n")
    commands = [ln.split("Command: ")[1] for ln in log if "Command: " in ln]
    assert commands == [f"p:{i}bad cmdline_proc_show" for i in range(2, 10)]


def test_kprobe_events_read_numbers_with_the_kernels_parsers():
    """kstrtouint() for maxactive (past UINT_MAX: BAD_MAXACT, not MAXACT_TOO_BIG),
    kstrtoul_from_user(.., 10, ..) for an event's enable (no hex, no spaces)."""
    s = sim()
    error_log = "/sys/kernel/tracing/error_log"
    assert s.write(KPROBE_EVENTS, "r4294967296:x cmdline_proc_show\n") == -EINVAL
    assert (
        s.read(error_log).split("\n")[0].endswith("trace_kprobe: error: Invalid maxactive number")
    )
    assert s.write(KPROBE_EVENTS, "r4097:x cmdline_proc_show\n") == -EINVAL
    assert "trace_kprobe: error: Maxactive is too big" in s.read(error_log)
    assert s.write(KPROBE_EVENTS, "r0x10:x cmdline_proc_show\n") > 0
    enable = "/sys/kernel/tracing/events/kprobes/x/enable"
    assert s.write(enable, "0x1\n") == s.write(enable, " 1\n") == -EINVAL
    assert s.write(enable, "1\n") == 2 and s.read(enable) == "1"


@pytest.mark.parametrize(("profile", "errno", "text"), [
    ("6.1", -ENOENT, "Maxactive is not for kprobe"),
    ("6.12", -EINVAL, "Maxactive is only for function exit"),
])  # fmt: skip
def test_trace_kprobe_profile_hooks(profile, errno, text):
    s = sim(profile)
    assert s.write(KPROBE_EVENTS, "p:bad nosuchfunc\n") == errno
    assert s.write(KPROBE_EVENTS, "p5:bad cmdline_proc_show\n") == -EINVAL
    assert f"trace_kprobe: error: {text}" in s.read("/sys/kernel/tracing/error_log")


def test_enabled_functions_columns_follow_the_profile():
    lines = {}
    for profile in ("6.1", "6.12"):
        s = sim(profile)
        s.sh("load_lp test_klp_livepatch")
        lines[profile] = s.read("/sys/kernel/tracing/enabled_functions").split("\t")[0]
    assert lines["6.1"] == "cmdline_proc_show (1)   I  "  # R I D
    assert lines["6.12"] == "cmdline_proc_show (1)   I     M "  # R I D O M


def test_set_graph_function_limits_what_is_graphed():
    s = sim()
    s.write("/sys/kernel/tracing/set_ftrace_filter", "cmdline_proc_show version_proc_show\n")
    s.write("/sys/kernel/tracing/current_tracer", "function_graph\n")
    s.write("/sys/kernel/tracing/set_graph_function", "cmdline_proc_show\n")
    s.read("/proc/version")
    s.read("/proc/cmdline")
    graph = [e.sym.name for e in s.system.tracer.buffer if e.kind == "gent" and e.sym]
    assert graph == ["cmdline_proc_show"]


def test_a_filter_change_keeps_the_tracers_place_in_the_ops_list():
    s = sim()
    s.write("/sys/kernel/tracing/set_ftrace_filter", "cmdline_proc_show\n")
    s.write("/sys/kernel/tracing/current_tracer", "function\n")
    s.sh("load_lp test_klp_livepatch")
    ftrace, sym = s.system.ftrace, s.kernel.vmlinux.lookup("cmdline_proc_show")
    before = [o.name for o in ftrace.ops_on(sym)]
    s.write("/sys/kernel/tracing/set_ftrace_filter", "version_proc_show\n", append=True)
    assert [o.name for o in ftrace.ops_on(sym)] == before


def test_a_fetch_argument_the_model_cannot_fetch_stops_the_script(tmp_path):
    path = tmp_path / "s.sh"
    path.write_text("log a\necho 'p:x cmdline_proc_show %di' > /sys/kernel/tracing/kprobe_events\n")
    r = klpsim("run", "--kernel", "6.12", str(path))
    assert r.status == 2 and "Traceback" not in r.err
    assert r.err.startswith(f"klpsim: {path}:2: kprobe_events: fetch argument '%di'")
    assert r.out == ""  # refused before line 1 ran


@pytest.mark.parametrize(("line", "why"), [
    ("echo 'p:x 0xffffffff81000000' >> /sys/kernel/tracing/kprobe_events",
     "kprobe_events: probes on a raw address are not modelled: 0xffffffff81000000"),
    ("echo 'r:y cmdline_proc_show v=+0(%si):u32' > /sys/kernel/tracing/kprobe_events",
     "kprobe_events: fetch argument 'v=+0(%si):u32' is not modelled"),
    ("echo 'f:z cmdline_proc_show' >> /sys/kernel/tracing/dynamic_events",
     "dynamic_events: only kprobe events are modelled: 'f:z cmdline_proc_show'"),
])  # fmt: skip
def test_what_the_model_cannot_write_is_refused_before_line_1(tmp_path, line, why):
    path = tmp_path / "s.sh"
    path.write_text(f"load_mod test_klp_kp_pre\n{line}\n")
    r = klpsim("run", "--kernel", "6.12", "--modules", str(MODULES), str(path))
    assert (r.status, r.out) == (2, "")
    assert r.err.startswith(f"klpsim: {path}:2: {why}") and r.err.count("\n") == 1
    # the same text written at run time (not known from the script) stops it there
    s = sim()
    text = line.split("'")[1] + "\n"
    target = line.rsplit(" ", 1)[1]
    with pytest.raises(NotModelled, match=re.escape(why)):
        s.kernel.fs.write(target, text, append=True)


@pytest.mark.parametrize(("toml", "key"), [
    ('[[ftrace_ops]]\nfuncs = []\n', "ftrace_ops[0].funcs"),
    ('[[ftrace_ops]]\nfuncs = ["f"]\nflags = ["DIRECT"]\n', "ftrace_ops[0].flags[0]"),
    ('[[kprobes]]\npost_handler = true\n', "kprobes[0].symbol"),
    ('[[kprobes]]\nsymbol = "f"\npost = true\n', "kprobes[0].post"),
])  # fmt: skip
def test_bad_hook_definitions_name_the_key(tmp_path, toml, key):
    (tmp_path / "test_modules").mkdir()
    (tmp_path / "test_modules" / "bad.toml").write_text(toml)
    path = tmp_path / "s.sh"
    path.write_text("load_mod bad\n")
    r = klpsim("run", str(path))
    assert r.status == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert f"key '{key}'" in r.err


def test_a_hook_that_fails_to_register_fails_the_load():
    s = sim("6.12")
    s.sh("load_lp test_klp_livepatch")
    status, _, err = s.rt.shell(["insmod", "test_klp_kp_post"])  # IPMODIFY vs the livepatch
    assert status == 1 and err.endswith("Device or resource busy\n")
    assert s.kernel.modules.find_module("test_klp_kp_post") is None
    assert Path("/proc/test_klp_kp_post").name not in s.kernel.fs.listdir("/proc")


def test_normalize_output_keeps_what_the_kernels_share():
    from klpsim.tools.realdiff import normalize_output

    model = (
        "TEST: t ... ffffffff81000084  k  version_proc_show+0x4    [FTRACE]\n"
        "ffffffff81000004  r  cmdline_proc_show+0x4    [FTRACE]\n"
        "ffffffff81000004  k  cmdline_proc_show+0x4    [FTRACE]\n"
        "cmdline_proc_show (1) R         \ttramp: 0xffffffffc1000000 "
        "(kprobe_ftrace_handler+0x0/0x1d0) ->kprobe_ftrace_handler+0x0/0x1d0\n"
        "            bash-1000    [000] ...1.     1.022000: kp: (cmdline_proc_show+0x4/0x30)\n"
        "bash: echo: write error: Invalid argument\n"
    )
    real = (
        "TEST: t ... ffffffffb251c2f4  r  cmdline_proc_show+0x4    [FTRACE]\n"
        "ffffffffb251c2f4  k  cmdline_proc_show+0x4    [FTRACE]\n"
        "ffffffffb251c374  k  version_proc_show+0x4    [FTRACE]\n"
        "cmdline_proc_show (1) R         \ttramp: 0xffffffffc02b9000 "
        "(kprobe_ftrace_handler+0x0/0x1b0) ->kprobe_ftrace_handler+0x0/0x1b0\n"
        "             cat-198     [000] .N.1.    21.855524: kp: (cmdline_proc_show+0x4/0x30)\n"
        "/tmp/klp-run/script.sh: line 7: echo: write error: Invalid argument\n"
    )
    assert normalize_output(model) == normalize_output(real)
    # what the scenarios check is kept: flags, the aggregate's order, the context
    assert normalize_output(model.replace("...1.", ".....")) != normalize_output(real)
    swapped = real.replace("  r  cmdline", "  X  cmdline").replace("  k  cmdline", "  r  cmdline")
    assert normalize_output(model) != normalize_output(swapped.replace("  X  ", "  k  "))


@pytest.mark.kernel_warns
def test_an_oops_kills_the_command_whatever_the_verb():
    """The failed disarm leaves a freed probe registered: the next hit oopses.
    A simulator verb is killed as a shell command is, and the script goes on."""
    s = sim()
    s.sh("load_mod test_klp_kp_pre\nload_mod test_klp_kp_post")
    s.sh("unload_mod test_klp_kp_post\nunload_mod test_klp_kp_pre")
    assert s.run("call cmdline_proc_show\ncat /proc/cmdline\ntrue") == 0
    assert s.err.getvalue().splitlines()[-2:] == [
        "bash: line 1:  1000 Killed  call cmdline_proc_show",
        "bash: line 2:  1000 Killed  cat /proc/cmdline",
    ]
    assert sum(ln.startswith("Oops: Oops: 0000 [#") for ln in s.dmesg()) == 2
