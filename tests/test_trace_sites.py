"""Call sites shared by ftrace users: enabled_functions' <count>:<flags>
(lpc26-truth.md), fprobe ops shared by kprobe_multi links, and the global
switches (ftrace_enabled, kprobes/enabled)."""

from harness import ROOT, Sim


def sites(sim, *names):
    ftrace = sim.kernel.exports["ftrace"]
    return [ftrace.site_state(sim.kernel.kallsyms.lookup_name(n)) for n in names]


def users(sim, *names):
    """How many ftrace ops each site has."""
    return [int(s.split(":")[0]) for s in sites(sim, *names)]


def fired(out):
    return [line.split()[1] for line in out.splitlines() if " on " in line]


def test_site_flags_and_the_sticky_m():
    # R: a SAVE_REGS user; I: IPMODIFY; D: DIRECT; M: I or D was ever there.
    sim = Sim()
    assert sites(sim, "cmdline_proc_show") == ["0:-"]
    sim.sh("load_lp test_klp_livepatch")
    assert sites(sim, "cmdline_proc_show") == ["1:IM"]
    sim.sh("bpf_attach kprobe cmdline_proc_show --name k")
    assert sites(sim, "cmdline_proc_show") == ["2:RIM"]
    sim.sh("disable_lp test_klp_livepatch\nunload_lp test_klp_livepatch")
    assert sites(sim, "cmdline_proc_show") == ["1:RM"]
    sim.sh("bpf_detach k")
    assert sites(sim, "cmdline_proc_show") == ["0:-"]
    T = "/sys/kernel/tracing"
    sim.sh(
        f"echo cmdline_proc_show version_proc_show > {T}/set_ftrace_filter\n"
        f"echo function > {T}/current_tracer"
    )
    assert sites(sim, "cmdline_proc_show", "version_proc_show") == ["1:M", "1:none"]


def test_kprobe_multi_links_share_one_fprobe_until_the_last_goes():
    sim = Sim()
    sim.sh(
        "bpf_attach kprobe_multi cmdline_proc_show,version_proc_show --name a\n"
        "bpf_attach kprobe_multi cmdline_proc_show --name b"
    )
    assert users(sim, "cmdline_proc_show", "version_proc_show") == [1, 1]
    assert fired(sim.sh("call cmdline_proc_show")) == ["a", "b"]
    sim.sh("bpf_detach a")
    assert users(sim, "cmdline_proc_show", "version_proc_show") == [1, 0]
    assert fired(sim.sh("call cmdline_proc_show")) == ["b"]
    assert fired(sim.sh("call version_proc_show")) == []
    sim.sh("bpf_detach b")
    assert sites(sim, "cmdline_proc_show", "version_proc_show") == ["0:-", "0:-"]
    assert fired(sim.sh("call cmdline_proc_show")) == []


def test_kretprobe_multi_fires_on_return():
    sim = Sim()
    sim.sh("bpf_attach kretprobe_multi cmdline_proc_show --name r")
    out = sim.sh("call cmdline_proc_show")
    assert "  kretprobe_multi r on cmdline_proc_show: saw return 0" in out.splitlines()
    assert out.index("ran vmlinux:cmdline_proc_show") < out.index("kretprobe_multi r")


def test_kprobes_enabled_disarms_and_rearms_every_probe():
    sim = Sim()
    path = "/sys/kernel/debug/kprobes/enabled"
    sim.sh("bpf_attach kprobe cmdline_proc_show --name k")
    assert sim.read(path) == "1"
    assert sim.write(path, "x\n") == -22
    assert sim.write(path, "0\n") == 2 and sim.read(path) == "0"
    assert fired(sim.sh("call cmdline_proc_show")) == []
    assert sim.write(path, "0\n") == 2
    assert sim.write(path, "1\n") == 2 and sim.read(path) == "1"
    assert fired(sim.sh("call cmdline_proc_show")) == ["k"]
    assert sim.write(path, "1\n") == 2
    assert fired(sim.sh("call cmdline_proc_show")) == ["k"]
    # write_enabled_file_bool() takes kstrtobool_from_user()'s words too.
    assert sim.write(path, "off\n") == 4 and sim.read(path) == "0"
    assert fired(sim.sh("call cmdline_proc_show")) == []
    assert sim.write(path, "Y\n") == 2 and sim.read(path) == "1"


def test_ftrace_enabled_off_skips_every_handler_unless_one_is_permanent():
    sim = Sim()
    path = "/proc/sys/kernel/ftrace_enabled"
    sim.sh("bpf_attach kprobe cmdline_proc_show --name k")
    assert sim.write(path, "2\n") == -22
    assert sim.write(path, "0\n") == 2 and sim.read(path) == "0"
    assert fired(sim.sh("call cmdline_proc_show")) == []
    assert sim.write(path, "1\n") == 2
    assert fired(sim.sh("call cmdline_proc_show")) == ["k"]
    sim.sh("load_lp test_klp_livepatch")  # its ops are FTRACE_OPS_FL_PERMANENT
    assert sim.write(path, "0\n") == -16
    assert sim.read(path) == "1"


def test_a_kprobe_on_a_module_function_names_its_module():
    sim = Sim(module_dirs=[ROOT / "tests" / "scenarios" / "replace-set" / "test_modules"])
    sim.sh("load_mod tgt\nbpf_attach kprobe tgt:tgt_show --name k")
    assert fired(sim.sh("call tgt:tgt_show")) == ["k"]
    (line,) = sim.read("/sys/kernel/debug/kprobes/list").splitlines()
    # IBT kernels probe past the endbr64; the module is named bare
    assert line.endswith("  k  tgt_show+0x4  tgt [FTRACE]")


def test_a_refused_attach_is_an_event_with_its_errno():
    from klpsim.trace.events import AttachRefused, LinkKind

    sim = Sim()
    # return probes: entry only (+4 is the entry on IBT kernels, past endbr64)
    sim.sh("bpf_attach kretprobe cmdline_proc_show+8 --name r")
    assert sim.err.getvalue().endswith(
        "bpf_attach: kretprobe cmdline_proc_show+8: Invalid argument (EINVAL)\n"
    )
    refused = [r.event for r in sim.system.events.records if isinstance(r.event, AttachRefused)]
    assert refused == [
        AttachRefused(
            LinkKind.KRETPROBE,
            ("cmdline_proc_show",),
            -22,
            (),
            "a kretprobe attaches at the entry only",
        )
    ]


def test_unloading_a_module_drops_its_call_sites_from_every_filter():
    sim = Sim(module_dirs=[ROOT / "tests" / "scenarios" / "replace-set" / "test_modules"])
    T = "/sys/kernel/tracing"
    sim.sh(
        "load_mod tgt\n"
        f"echo tgt_show cmdline_proc_show > {T}/set_ftrace_filter\n"
        f"echo function > {T}/current_tracer\n"
        "unload_mod tgt"
    )
    ops = sim.system.tracer.ops
    assert [s.name for s in ops.filter] == ["cmdline_proc_show"]
    sim.sh("cat /proc/cmdline")
    assert sim.read(f"{T}/trace").splitlines()[-1].endswith("cmdline_proc_show <-do_syscall_64")


def test_a_kprobe_past_the_end_of_its_function_is_enoent():
    # _kprobe_addr(): no symbol holds the address (the model lays no function
    # after another)
    sim = Sim()
    sim.sh("bpf_attach kprobe cmdline_proc_show+0x100000 --name k")
    assert sim.err.getvalue() == (
        "bpf_attach: kprobe cmdline_proc_show+0x100000: No such file or directory (ENOENT)\n"
    )
