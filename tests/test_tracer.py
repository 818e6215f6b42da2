"""The function tracer's tracefs files, where the selftests only grep:
the exact trace lines, the filter, tracing_on and the function list."""

from harness import ROOT, Sim

T = "/sys/kernel/tracing"


def traced(sim):
    """The trace's lines after its header."""
    return [line for line in sim.read(f"{T}/trace").splitlines() if not line.startswith("#")]


def test_trace_lines_are_the_kernels_format():
    sim = Sim()
    sim.sh(f"echo cmdline_proc_show > {T}/set_ftrace_filter\necho function > {T}/current_tracer")
    clock = sim.kernel.clock
    clock.advance(12_345_678_901 - clock.now)
    sim.sh("cat /proc/cmdline")
    pid = int(sim.sh("spawn_task reader"))
    sim.sh(f"sleep_task {pid} vfs_read seq_read_iter cmdline_proc_show")
    assert traced(sim) == [
        "            bash-1000    [000] .....    12.345678: cmdline_proc_show <-do_syscall_64",
        "          reader-1001    [000] .....    12.347678: cmdline_proc_show <-seq_read_iter",
    ]
    header = sim.read(f"{T}/trace").splitlines()[:3]
    assert header == [
        "# tracer: function",
        "#",
        "# entries-in-buffer/entries-written: 2/2   #P:2",
    ]
    assert sim.write(f"{T}/trace", "\n") == 1
    assert traced(sim) == []
    assert "entries-in-buffer/entries-written: 0/0" in sim.read(f"{T}/trace")


def test_tracing_on_pauses_the_recording():
    sim = Sim()
    sim.sh(f"echo cmdline_proc_show > {T}/set_ftrace_filter\necho function > {T}/current_tracer")
    assert sim.read(f"{T}/tracing_on") == "1"
    assert sim.write(f"{T}/tracing_on", "0\n") == 2
    sim.sh("cat /proc/cmdline")
    assert traced(sim) == [] and sim.read(f"{T}/tracing_on") == "0"
    assert sim.write(f"{T}/tracing_on", "2\n") == -22
    assert sim.write(f"{T}/tracing_on", "1\n") == 2
    sim.sh("cat /proc/cmdline")
    assert len(traced(sim)) == 1


def test_current_tracer_nop_stops_the_function_tracer():
    sim = Sim()
    assert sim.read(f"{T}/current_tracer") == "nop"
    assert sim.read(f"{T}/available_tracers") == "function_graph function nop"
    sim.sh(f"echo cmdline_proc_show > {T}/set_ftrace_filter\necho function > {T}/current_tracer")
    assert sim.read(f"{T}/current_tracer") == "function"
    assert sim.write(f"{T}/current_tracer", "blk\n") == -22
    assert sim.read(f"{T}/current_tracer") == "function"
    assert sim.write(f"{T}/current_tracer", "nop\n") == 4
    sim.sh("cat /proc/cmdline")
    assert traced(sim) == []
    assert sim.write(f"{T}/current_tracer", "function\n") == 9
    sim.sh("cat /proc/cmdline")
    assert [line.split()[-2] for line in traced(sim)] == ["cmdline_proc_show"]


def test_set_ftrace_filter():
    sim = Sim()
    assert sim.read(f"{T}/set_ftrace_filter") == "#### all functions enabled ####"
    assert sim.write(f"{T}/set_ftrace_filter", "no_such_function\n") == -22
    assert sim.write(f"{T}/set_ftrace_filter", "__schedule\n") == -22  # notrace
    text = "cmdline_proc_show version_proc_show\n"
    assert sim.write(f"{T}/set_ftrace_filter", text) == len(text)
    assert sim.read(f"{T}/set_ftrace_filter") == "cmdline_proc_show\nversion_proc_show"
    sim.sh(f"echo function > {T}/current_tracer\ncat /proc/version\ncat /proc/meminfo")
    assert [line.split()[-2] for line in traced(sim)] == ["version_proc_show"]
    # Changing the filter while tracing moves the tracer to the new set.
    assert sim.write(f"{T}/set_ftrace_filter", "meminfo_proc_show\n") == 18
    sim.sh("cat /proc/version\ncat /proc/meminfo")
    assert [line.split()[-2] for line in traced(sim)][1:] == ["meminfo_proc_show"]


def test_available_filter_functions_names_module_functions_with_their_module():
    sim = Sim(module_dirs=[ROOT / "tests" / "scenarios" / "replace-set" / "test_modules"])
    sim.sh("load_mod tgt")
    funcs = sim.read(f"{T}/available_filter_functions").splitlines()
    assert "cmdline_proc_show" in funcs
    assert "__schedule" not in funcs and "native_safe_halt" not in funcs
    assert [f for f in funcs if "[" in f] == ["tgt_show [tgt]", "tgt_work [tgt]"]
    assert funcs.index("cmdline_proc_show") < funcs.index("tgt_show [tgt]")  # vmlinux first
