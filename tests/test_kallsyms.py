"""Symbol tables (kallsyms, System.map) and the debugfs/procfs line parsers."""

import gzip

import pytest

from klpsim.artifacts.kallsyms import ANY, KallsymsError, Ksym, SymbolTable, read_symbol_table
from klpsim.artifacts.procfs import parse_proc_modules, parse_stack, parse_stat
from klpsim.artifacts.tracefs import parse_enabled_functions, parse_injectable, parse_kprobes

KALLSYMS = (
    "ffffffff81000000 T _text\n"
    "ffffffff81001000 t helper\n"
    "ffffffff81002000 D some_data\n"
    "ffffffff81003000 t helper\n"
    "ffffffff81004000 W weak_fn\n"
    "ffffffffc0000000 t helper\t[mod_a]\n"
    "ffffffffc0000100 T exported\t[mod_a]\n"
    "ffffffffc0001000 t helper\t[mod_b]\n"
    "ffffffffc0002000 t ftrace_trampoline\t[__builtin__ftrace]\n"
    "ffffffffc0003000 t bpf_prog_6deef7357e7b4530_sd_fw_ingress\t[bpf]\n"
)


def test_kallsyms_lookup_in_kallsyms_order():
    st = SymbolTable(KALLSYMS.encode())
    assert len(st) == 10 and st.addresses_known
    assert st.lookup("helper", None) == (
        Ksym(0xFFFFFFFF81001000, "t", "helper", None),
        Ksym(0xFFFFFFFF81003000, "t", "helper", None),
    )
    assert [s.module for s in st.lookup("helper", ANY)] == [None, None, "mod_a", "mod_b"]
    assert st.count("helper") == 2 and st.count("helper", "mod_a") == 1
    assert st.count("missing") == 0 and "helper" in st and "missing" not in st
    assert st.modules() == ("mod_a", "mod_b", "__builtin__ftrace", "bpf")
    assert st.functions() == ("_text", "helper", "helper", "weak_fn")
    assert st.functions("mod_a") == ("helper", "exported")
    assert [s.name for s in st][:3] == ["_text", "helper", "some_data"]
    assert st.lookup("exported")[0].is_function and not st.lookup("some_data")[0].is_function


def test_system_map_plain_and_gzip(tmp_path):
    text = "".join(ln for ln in KALLSYMS.splitlines(keepends=True) if "\t" not in ln)
    (tmp_path / "System.map").write_text(text)
    (tmp_path / "System.map.gz").write_bytes(gzip.compress(text.encode()))
    a = read_symbol_table(tmp_path / "System.map")
    b = read_symbol_table(tmp_path / "System.map.gz")
    assert list(a) == list(b) and len(a) == 5 and a.modules() == ()


def test_zero_addresses_keep_names_and_order():
    zero = "".join("0000000000000000" + ln[16:] for ln in KALLSYMS.splitlines(keepends=True))
    st = SymbolTable(zero.encode())
    assert not st.addresses_known
    assert [s.address for s in st.lookup("helper", None)] == [0, 0]
    assert st.count("helper", None) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "ffffffff81000000 T _text\nffffffff81000010 T\n",
            "k:2: not a kallsyms or System.map line: 'ffffffff81000010 T'",
        ),
        (
            "ffffffff81000000 T _text\nzzzz T foo\n",
            "k:2: not a kallsyms or System.map line: 'zzzz T foo'",
        ),
        (
            "ffffffffc0000000 t a\t[m]\nffffffff81000000 T b\n",
            "k:2: a vmlinux symbol after module symbols: 'ffffffff81000000 T b'",
        ),
        (
            "ffffffffffffffff B The real System.map is in the linux-image-6.1.0-57-amd64-dbg "
            "package\n",
            "k: a stub System.map (Debian ships the real one in linux-image-*-dbg); use the "
            "host's /proc/kallsyms instead",
        ),
    ],
)
def test_bad_tables_name_the_line(text, message):
    with pytest.raises(KallsymsError) as e:
        SymbolTable(text.encode(), "k")
    assert str(e.value) == message


def test_bad_files(tmp_path):
    gz = tmp_path / "k.gz"
    gz.write_bytes(gzip.compress(KALLSYMS.encode())[:40])
    with pytest.raises(KallsymsError, match=r"k.gz: truncated or corrupt gzip data"):
        read_symbol_table(gz)
    with pytest.raises(KallsymsError, match=r"nope: No such file or directory"):
        read_symbol_table(tmp_path / "nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KallsymsError, match=r"empty: empty symbol table"):
        read_symbol_table(tmp_path / "empty")


# ------------------------------------------------------------------ procfs


def test_proc_modules():
    text = (
        "lp_c 16384 0 - Live 0x0000000000000000 (OEK)\n"
        "nfs 507904 2 nfsv4,lockd, Live 0xffffffffc0800000\n"
        "mod_x 12288 1 [permanent], Loading 0xffffffffc0900000 (O)\n"
        "old 12288 - - Unloading 0x0000000000000000\n"
    )
    m = parse_proc_modules(text)
    assert [(x.name, x.refcnt, x.used_by, x.state, x.taints) for x in m] == [
        ("lp_c", 0, (), "Live", "OEK"),
        ("nfs", 2, ("nfsv4", "lockd"), "Live", ""),
        ("mod_x", 1, ("[permanent]",), "Loading", "O"),
        ("old", None, (), "Unloading", ""),
    ]
    assert m[1].address == 0xFFFFFFFFC0800000
    with pytest.raises(ValueError, match="not a /proc/modules line"):
        parse_proc_modules("just words here\n")


@pytest.mark.parametrize(
    "stat, comm, state, kthread",
    [
        ("1 (systemd) S 0 1 1 0 -1 4194560 0 0\n", "systemd", "S", False),
        ("42 (a b) (c) R 2 0 0 0 -1 2129984 0 0\n", "a b) (c", "R", True),
        ("7 ()) D 2 0 0 0 -1 2097152 0\n", ")", "D", True),
        ("8 (two\nlines) I 2 0 0 0 -1 69238880 0\n", "two\nlines", "I", True),
    ],
)
def test_stat_comm_with_parentheses(stat, comm, state, kthread):
    s = parse_stat(stat)
    assert (s.comm, s.state, s.kthread) == (comm, state, kthread)


def test_stat_errors():
    for bad in ("", "1 systemd S 0\n", "x (y) S 1 2 3 4 5 6\n", "1 (y) S 1 2\n"):
        with pytest.raises(ValueError, match="not a /proc/PID/stat line"):
            parse_stat(bad)


def test_stack():
    frames = parse_stack(
        "[<0>] cmdline_proc_show+0x10/0x40\n"
        "[<0>] xfs_foo+0x5/0x80 [xfs]\n"
        "[<ffffffff81234567>] 0xffffffffc0a01234\n"
    )
    assert [f[:4] for f in frames] == [
        ("cmdline_proc_show", 0x10, 0x40, None),
        ("xfs_foo", 5, 0x80, "xfs"),
        (None, 0, 0, None),
    ]
    assert frames[2].text == "0xffffffffc0a01234"
    assert parse_stack("") == ()
    with pytest.raises(ValueError, match="not a /proc/PID/stack line"):
        parse_stack("cmdline_proc_show+0x10/0x40\n")


# ----------------------------------------------------------------- tracefs


def test_kprobes_list():
    k = parse_kprobes(
        "ffffffff81234560  k  cmdline_proc_show+0x0    [FTRACE]\n"
        "0000000000000000  r  nfs_permission+0x0  nfs [GONE]\n"
        "ffffffff81434610  k  meminfo_proc_show+0x10    [DISABLED][OPTIMIZED]\n"
        "ffffffffc0a00000  k  xfs_foo+0x4/0x80 [xfs] \n"
    )
    assert [(e.address, e.kind, e.symbol, e.offset, e.module, sorted(e.flags)) for e in k] == [
        (0xFFFFFFFF81234560, "k", "cmdline_proc_show", 0, None, ["FTRACE"]),
        (None, "r", "nfs_permission", 0, "nfs", ["GONE"]),
        (0xFFFFFFFF81434610, "k", "meminfo_proc_show", 0x10, None, ["DISABLED", "OPTIMIZED"]),
        (0xFFFFFFFFC0A00000, "k", "xfs_foo", 4, "xfs", []),
    ]
    with pytest.raises(ValueError, match="not a kprobes/list line"):
        parse_kprobes("ffff x foo+0x0\n")


def test_enabled_functions_6_1_and_6_12_shapes():
    six_one = (
        "cmdline_proc_show (1) R I  \ttramp: 0xffffffffc0212000 (klp_ftrace_handler+0x0/0x1c0)"
        " ->klp_ftrace_handler+0x0/0x1c0\n"
    )
    six_twelve = (
        "cmdline_proc_show (2) R I   M \ttramp: ftrace_trampoline+0x0/0x1a0 [__builtin__ftrace]"
        " (klp_ftrace_handler+0x0/0x1e0) ->klp_ftrace_handler+0x0/0x1e0\n"
        "vfs_read (1)    D   M \n\tdirect-->bpf_trampoline_6442+0x0/0x100\n"
        "xfs_foo [xfs] (1) R         ->kprobe_ftrace_handler+0x0/0x160\n"
    )
    (a,) = parse_enabled_functions(six_one)
    assert (a.function, a.refcount, a.flags, a.calls) == (
        "cmdline_proc_show",
        1,
        {"R", "I"},
        ("klp_ftrace_handler+0x0/0x1c0",),
    )
    assert a.trampolines == ("tramp: 0xffffffffc0212000 (klp_ftrace_handler+0x0/0x1c0)",)
    b, c, d = parse_enabled_functions(six_twelve)
    assert b.flags == {"R", "I", "M"} and b.refcount == 2
    assert c.flags == {"D", "M"} and c.direct == "bpf_trampoline_6442+0x0/0x100"
    assert c.text.endswith("\n\tdirect-->bpf_trampoline_6442+0x0/0x100")
    assert (d.function, d.module, d.flags, d.calls) == (
        "xfs_foo",
        "xfs",
        {"R"},
        ("kprobe_ftrace_handler+0x0/0x160",),
    )
    with pytest.raises(ValueError, match="not an enabled_functions line"):
        parse_enabled_functions("no count here\n")


def test_injectable():
    e = parse_injectable("should_failslab\tERRNO\nopen_ctree [btrfs]\tERRNO_NULL\n")
    assert [tuple(x) for x in e] == [
        ("should_failslab", None, "ERRNO"),
        ("open_ctree", "btrfs", "ERRNO_NULL"),
    ]
    with pytest.raises(ValueError):
        parse_injectable("no tab\n")
