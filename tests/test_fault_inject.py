"""fail_function's fault attributes: should_fail() and fail_dump() of
lib/fault-inject.c, through /sys/kernel/debug/fail_function/."""

import pytest

from harness import Sim

FF = "/sys/kernel/debug/fail_function"


def injected(**attrs):
    """A 7.1 kernel with __x64_sys_getppid in fail_function/inject and the
    given attributes written; returns (sim, call) where call() is one call
    of getppid that says whether it failed."""
    sim = Sim()
    assert sim.write(f"{FF}/inject", "__x64_sys_getppid\n") == 18
    for name, value in attrs.items():
        assert sim.write(f"{FF}/{name}", f"{value}\n") > 0, name
    sym = sim.kernel.kallsyms.lookup_name("__x64_sys_getppid")
    task = sim.kernel.sched.current

    def call() -> bool:
        return sim.kernel.call(task, sym) == -22

    return sim, call


def notices(sim):
    return [r.text for r in sim.kernel.log.records if r.text.startswith("FAULT_INJECTION")]


def test_times_counts_down_the_failures_and_minus_one_is_forever():
    sim, call = injected(probability=100, times=3)
    assert [call() for _ in range(5)] == [True, True, True, False, False]
    assert sim.read(f"{FF}/times") == "0"
    sim, call = injected(probability=100, times=-1)
    assert all(call() for _ in range(20))
    assert sim.read(f"{FF}/times") == "-1"


def test_the_defaults_fail_nothing():
    # FAULT_ATTR_INITIALIZER: probability 0, interval 1, times 1, space 0, verbose 2.
    sim, call = injected()
    assert [sim.read(f"{FF}/{a}") for a in ("probability", "interval", "times", "space")] == [
        "0",
        "1",
        "1",
        "0",
    ]
    assert sim.read(f"{FF}/verbose") == "2"
    assert not any(call() for _ in range(5))


def test_probability_0_never_fails_100_always():
    sim, call = injected(probability=0, times=-1)
    assert not any(call() for _ in range(50))
    sim, call = injected(probability=100, times=-1)
    assert all(call() for _ in range(50))


def test_probability_is_percent():
    # probability <= get_random_u32_below(100) passes: 1 fails one call in 100.
    sim, call = injected(probability=1, times=-1, verbose=0)
    fails = sum(call() for _ in range(5000))
    assert 25 <= fails <= 75, fails
    sim, call = injected(probability=99, times=-1, verbose=0)
    passes = 5000 - sum(call() for _ in range(5000))
    assert 25 <= passes <= 75, passes


def test_the_same_kernel_fails_the_same_calls():
    def pattern():
        sim, call = injected(probability=50, times=-1, verbose=0)
        return [call() for _ in range(64)]

    first = pattern()
    assert first == pattern()
    assert 16 <= sum(first) <= 48


def test_interval_fails_every_nth_call():
    sim, call = injected(probability=100, times=-1, interval=3)
    assert [call() for _ in range(7)] == [False, False, True, False, False, True, False]
    sim, call = injected(probability=100, times=-1, interval=2)
    assert [call() for _ in range(4)] == [False, True, False, True]
    sim, call = injected(probability=100, times=-1, interval=1)
    assert all(call() for _ in range(3))


def test_space_is_used_up_before_any_failure():
    # Each call is size 1: space > size is taken away and the call passes.
    sim, call = injected(probability=100, times=-1, space=3)
    assert [call() for _ in range(4)] == [False, False, True, True]
    assert sim.read(f"{FF}/space") == "1"


def test_fail_dump_says_what_failed_before_times_goes_down():
    sim, call = injected(probability=100, times=2, interval=1, space=0, verbose=1)
    call()
    call()
    assert notices(sim) == [
        "FAULT_INJECTION: forcing a failure.\n"
        "name fail_function, interval 1, probability 100, space 0, times 2",
        "FAULT_INJECTION: forcing a failure.\n"
        "name fail_function, interval 1, probability 100, space 0, times 1",
    ]
    assert {r.level for r in sim.kernel.log.records if r.text.startswith("FAULT")} == {5}


def test_verbose_0_is_silent():
    sim, call = injected(probability=100, times=-1, verbose=0)
    assert all(call() for _ in range(3))
    assert notices(sim) == []


def test_fail_dump_is_not_ratelimited_by_default():
    # FAULT_ATTR_INITIALIZER: RATELIMIT_STATE_INIT_DISABLED, interval 0.
    sim, call = injected(probability=100, times=-1)
    assert sim.read(f"{FF}/verbose_ratelimit_interval_ms") == "0"
    assert sim.read(f"{FF}/verbose_ratelimit_burst") == "10"
    for _ in range(30):
        assert call()
    assert len(notices(sim)) == 30


def test_fail_dump_ratelimit_windows_once_set():
    # ___ratelimit(): burst notices per window of interval jiffies (the
    # "_ms" file holds jiffies: HZ 250); a new window first reports what the
    # last one suppressed.
    sim, call = injected(
        probability=100, times=-1, verbose_ratelimit_interval_ms=250, verbose_ratelimit_burst=3
    )
    clock = sim.kernel.clock
    clock.advance(10**9 - clock.now % 10**9)  # a whole second: jiffies is not 0
    for _ in range(5):
        call()
        clock.advance(100 * 10**6)
    assert len(notices(sim)) == 3
    clock.advance(10**9)  # past begin + 250 jiffies
    call()
    assert len(notices(sim)) == 4
    warn = [r for r in sim.kernel.log.records if "suppressed" in r.text]
    assert [(r.level, r.text) for r in warn] == [(4, "fail_dump: 2 callbacks suppressed")]
    assert sim.kernel.log.records[-1].text.startswith("FAULT_INJECTION")
    # The next window suppresses again, and says so again.
    for _ in range(5):
        call()
    clock.advance(2 * 10**9)
    call()
    warn = [r.text for r in sim.kernel.log.records if "suppressed" in r.text]
    assert warn == ["fail_dump: 2 callbacks suppressed", "fail_dump: 3 callbacks suppressed"]
    assert sim.write(f"{FF}/verbose_ratelimit_interval_ms", "0\n") == 2
    assert sim.read(f"{FF}/verbose_ratelimit_interval_ms") == "0"
    assert sim.write(f"{FF}/verbose_ratelimit_burst", "-1\n") == -22
    assert sim.write(f"{FF}/verbose_ratelimit_burst", "4294967297\n") == 11
    assert sim.read(f"{FF}/verbose_ratelimit_burst") == "1"


@pytest.mark.parametrize(
    "name, value, err",
    [
        ("probability", "101", -22),
        ("probability", "-1", -22),
        ("interval", "0", -22),
        ("times", "x", -22),
        ("verbose", "1 2", -22),
    ],
)
def test_attribute_writes_that_are_refused(name, value, err):
    sim, _ = injected()
    before = sim.read(f"{FF}/{name}")
    assert sim.write(f"{FF}/{name}", f"{value}\n") == err
    assert sim.read(f"{FF}/{name}") == before


def test_times_and_space_are_ints():
    sim, _ = injected()
    assert sim.write(f"{FF}/times", "4294967295\n") == 11
    assert sim.read(f"{FF}/times") == "-1"
    assert sim.write(f"{FF}/space", "2147483648\n") == 11
    assert sim.read(f"{FF}/space") == "-2147483648"


U64 = 1 << 64


@pytest.fixture
def ei_sim(tmp_path):
    """7.1 with a module whose functions are NULL and ERRNO_NULL injectable."""
    mods = tmp_path / "test_modules"
    mods.mkdir()
    (mods / "eimod.toml").write_text(
        'functions = ["m_null", "m_errno_null"]\n'
        '[error_injection]\nm_null = "NULL"\nm_errno_null = "ERRNO_NULL"\n'
    )
    sim = Sim(module_dirs=[mods])
    sim.sh("load_mod eimod")
    return sim


@pytest.mark.parametrize(
    "func, default, good, bad",
    [
        # adjust_error_retval(): what each error type may return
        ("__x64_sys_getppid", U64 - 22, [U64 - 4095, U64 - 1], [0, 1, U64 - 4096]),
        ("should_fail_alloc_page", 1, [1], [0, 2]),
        ("m_null", 0, [0], [1, U64 - 22]),
        ("m_errno_null", 0, [0, U64 - 4095, U64 - 1], [1, U64 - 4096]),
    ],
)
def test_fail_function_retval_follows_the_error_type(ei_sim, func, default, good, bad):
    sim = ei_sim
    assert sim.write(f"{FF}/inject", f"{func}\n") == len(func) + 1
    retval = f"{FF}/{func}/retval"
    assert sim.read(retval) == f"{default:x}"
    for value in bad:
        assert sim.write(retval, f"{value}\n") == -22, value
        assert sim.read(retval) == f"{default:x}"
    for value in good:
        assert sim.write(retval, f"{value}\n") == len(f"{value}\n"), value
        assert sim.read(retval) == f"{value:x}"


@pytest.mark.parametrize(
    "retval, returned",
    [(U64 - 4095, -4095), (U64 - 1, -1)],
)
def test_the_caller_sees_retval_as_a_signed_long(retval, returned):
    sim, call = injected(probability=100, times=-1)
    sim.write(f"{FF}/__x64_sys_getppid/retval", f"{retval}\n")
    sym = sim.kernel.kallsyms.lookup_name("__x64_sys_getppid")
    assert sim.kernel.call(sim.kernel.sched.current, sym) == returned


def test_to_signed_at_the_sign_bit():
    from klpsim.trace.error_inject import to_signed

    assert [to_signed(v) for v in (0, 2**63 - 1, 2**63, U64 - 1, U64 + 5)] == [
        0,
        2**63 - 1,
        -(2**63),
        -1,
        5,
    ]


def test_inject_file_adds_removes_and_refuses(ei_sim):
    sim = ei_sim
    inject = f"{FF}/inject"
    assert sim.write(inject, "no_such_function\n") == -22
    assert sim.write(inject, "cmdline_proc_show\n") == -34  # ERANGE: not injectable
    assert sim.write(inject, "__x64_sys_getppid\n") == 18
    assert sim.write(inject, "__x64_sys_getppid\n") == -16  # EBUSY: there already
    assert sim.write(inject, "m_null\n") == 7
    assert sim.read(inject) == "__x64_sys_getppid\nm_null"
    assert sim.read("/sys/kernel/debug/kprobes/list").count("[FTRACE]") == 2
    assert sim.write(inject, "!nosuch\n") == -2
    assert sim.write(inject, "!m_null\n") == 8
    assert sim.read(inject) == "__x64_sys_getppid"
    assert sim.kernel.fs.lookup(f"{FF}/m_null") is None
    assert sim.write(inject, "m_null\n") == 7
    assert sim.write(inject, "\n") == 1  # an empty line clears the list
    assert sim.read(inject) == ""
    assert sim.read("/sys/kernel/debug/kprobes/list") == ""
    assert sim.kernel.fs.lookup(f"{FF}/__x64_sys_getppid") is None


def test_error_injection_list_without_the_config_stays_empty():
    # Debian's kernels lack CONFIG_FUNCTION_ERROR_INJECTION.
    sim = Sim("6.12")
    ei = sim.system.bpf.ei
    ei.add_vmlinux_entry("cmdline_proc_show")
    sym = sim.kernel.kallsyms.lookup_name("cmdline_proc_show")
    assert ei.entries == [] and not ei.within_error_injection_list(sym)
    assert sim.kernel.fs.lookup("/sys/kernel/debug/error_injection/list") is None


def test_the_error_type_of_a_function():
    sim = Sim()
    ei = sim.system.bpf.ei
    lookup = sim.kernel.kallsyms.lookup_name
    assert ei.get_injectable_error_type(lookup("cmdline_proc_show")) is None
    assert ei.get_injectable_error_type(lookup("__x64_sys_getppid")) == 1  # EI_ETYPE_ERRNO
    assert ei.get_injectable_error_type(lookup("should_fail_alloc_page")) == 3  # TRUE
    ei.add_vmlinux_entry("cmdline_proc_show", 0)
    assert ei.get_injectable_error_type(lookup("cmdline_proc_show")) == 0  # NULL
