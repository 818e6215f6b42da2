"""``klpsim run --kallsyms``: the simulated kernel with a real symbol table."""

import gzip

from harness import Sim, klpsim
from klpsim.artifacts.kallsyms import SymbolTable

TABLE = (
    "ffffffff81000000 T _text\n"
    "ffffffff81001000 T cmdline_proc_show\n"
    "ffffffff81002000 t dup_static\n"
    "ffffffff81003000 T real_only_func\n"
    "ffffffff81004000 D dup_static\n"
    "ffffffff81005000 t dup_static\n"
    "ffffffff81006000 t init_once\n"
    "ffffffffc0000000 t xfs_show\t[xfs]\n"
    "ffffffffc0000100 t xfs_show\t[xfs]\n"
    "ffffffffc0002000 t ftrace_trampoline\t[__builtin__ftrace]\n"
    "ffffffffc0003000 t bpf_prog_6deef7357e7b4530_x\t[bpf]\n"
)


def lp(obj: str, *funcs: str) -> str:
    """A livepatch definition patching *funcs* (``name`` or ``name,sympos``) of *obj*."""
    out = f'livepatch = true\n[[objects]]\nname = "{obj}"\nfuncs = [\n'
    for f in funcs:
        name, _, pos = f.partition(",")
        out += f'  {{ old_name = "{name}", old_sympos = {pos or 0}, output = "new {name}" }},\n'
    return out + "]\n"


def sim(**defs: str) -> Sim:
    return Sim("6.12", definitions=defs, symbols=SymbolTable(TABLE.encode()))


def test_a_function_only_the_table_has_can_be_patched_and_called():
    s = sim(p=lp("vmlinux", "real_only_func"))
    assert "ran vmlinux:real_only_func (the original)" in s.sh("call real_only_func")
    s.sh("load_lp p")
    assert "ran p:livepatch_real_only_func (new_func of livepatch p)" in s.sh("call real_only_func")


def test_the_model_keeps_its_own_behaviour_for_the_functions_it_knows():
    s = sim(p=lp("vmlinux", "cmdline_proc_show"))
    assert s.read("/proc/cmdline").startswith("BOOT_IMAGE=")
    s.sh("load_lp p")
    assert s.read("/proc/cmdline") == "new cmdline_proc_show"


def test_sympos_counts_the_table_order_of_every_symbol_type():
    # dup_static: t, D, t -> sympos 3 is the second text symbol
    s = sim(p=lp("vmlinux", "dup_static,3"), amb=lp("vmlinux", "dup_static"))
    s.sh("load_lp p")
    assert s.read("/sys/kernel/livepatch/p/vmlinux/dup_static,3/../patched") == "1"
    s.sh("load_failing_mod amb")
    # the kernel passes objname NULL for vmlinux: printk shows "(null)"
    assert (
        "livepatch: unresolvable ambiguity for symbol 'dup_static' in object '(null)'" in s.dmesg()
    )


def test_a_name_missing_from_the_table_fails_as_on_a_kernel():
    # init_once is in the table once, and the model has two: the table wins;
    # tcp_sendmsg is one of the model's own functions, absent from this table
    s = sim(p=lp("vmlinux", "init_once,2"), q=lp("vmlinux", "tcp_sendmsg"))
    s.sh("load_failing_mod p\nload_failing_mod q")
    log = s.dmesg()
    assert (
        "livepatch: symbol position 2 for symbol 'init_once' in object 'vmlinux' not found" in log
    )
    assert "livepatch: symbol 'tcp_sendmsg' not found in symbol table" in log
    assert "insmod: ERROR: could not insert module test_modules/q.ko: Invalid parameters" in log


def test_modules_of_the_table_are_loaded_at_boot_with_their_names():
    s = sim(p=lp("xfs", "xfs_show,1"))
    assert sorted(s.kernel.modules.modules) == ["xfs"]  # not [bpf] nor [__builtin__ftrace]
    assert s.dmesg() == []  # in-tree and signed: no taint lines
    s.sh("load_lp p")
    assert "ran p:livepatch_xfs_show" in s.sh("call xfs:xfs_show")


def test_cli_reads_a_gzipped_table(tmp_path):
    table = tmp_path / "kallsyms.gz"
    table.write_bytes(gzip.compress(TABLE.encode()))
    (tmp_path / "s.sh").write_text("call real_only_func\n")
    r = klpsim("run", "--kallsyms", str(table), str(tmp_path / "s.sh"))
    assert r.status == 0 and "ran vmlinux:real_only_func (the original)" in r.out


def test_cli_bad_table_is_one_line(tmp_path):
    (tmp_path / "s.sh").write_text("true\n")
    bad = tmp_path / "bad"
    bad.write_text("ffffffff81000000 T ok\nnot a line at all\n")
    r = klpsim("run", "--kallsyms", str(bad), str(tmp_path / "s.sh"))
    assert r.status == 2 and r.out == ""
    assert (
        r.err
        == f"klpsim: --kallsyms {bad}:2: not a kallsyms or System.map line: 'not a line at all'\n"
    )
    r = klpsim("run", "--kallsyms", str(tmp_path / "none"), str(tmp_path / "s.sh"))
    assert r.err == f"klpsim: --kallsyms {tmp_path}/none: No such file or directory\n"
