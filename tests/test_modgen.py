"""Module definitions -> C (real/vm/modgen.py), and the parts of the
real-kernel tier that need no guest."""

from __future__ import annotations

import re
from pathlib import Path

from harness import klpsim
from klpsim.model.schema import load_definition, parse_definition
from klpsim.real.vm.api import module_names_in
from klpsim.real.vm.cli import main
from klpsim.real.vm.modgen import (
    DEBIAN,
    REPLACE_SET_KERNEL,
    Signature,
    generate_module,
    signature,
)
from klpsim.real.vm.selftests import check_result_view, count_results, functions_sh_filter
from klpsim.scenario.verbs import default_registry

DEFS = Path(__file__).parent / "real" / "defs"


def test_livepatch_source():
    src = generate_module(load_definition(DEFS / "klpsim_lp_a.toml"), DEBIAN)
    assert 'MODULE_LICENSE("GPL");' in src
    assert 'MODULE_INFO(livepatch, "Y");' in src
    assert (
        "static int __klpsim_replace = 0;\n"
        "module_param_named(replace, __klpsim_replace, int, 0644);"
    ) in src
    assert (
        "\t__klpsim_patch.replace = __klpsim_replace;\n\treturn klp_enable_patch(&__klpsim_patch);"
    ) in src
    assert '{ .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show,' in src
    assert '{ .old_name = "version_proc_show", .new_func = lp_a_version,' in src
    assert '{ .name = "klpsim_mod_a", .funcs = __klpsim_funcs_1 },' in src
    assert "{ .id = 7UL, .version = 2U }," in src
    assert 'seq_printf(m, "%s\\n", "klpsim_lp_a: cmdline");' in src


def test_replace_default_from_toml():
    src = generate_module(load_definition(DEFS / "klpsim_lp_b.toml"), DEBIAN)
    assert "static int __klpsim_replace = 1;" in src
    assert "\t.replace = true,\n};" in src  # the static klp_patch too: inspect reads it
    assert '"klpsim_lp_b: this has been live patched"' in src


def test_target_module_source():
    src = generate_module(load_definition(DEFS / "klpsim_mod_a.toml"), DEBIAN)
    assert "noinline int klpsim_mod_a_show(struct seq_file *m, void *v)" in src
    assert "EXPORT_SYMBOL_GPL(klpsim_mod_a_work);" in src
    assert '"klpsim_mod_a: klpsim_mod_a_work: original output"' in src
    assert "livepatch" not in src


def test_replace_set_parameter_on_the_replace_set_kernel():
    """v2 4/4's test modules: an int replace_set parameter, copied into the
    u32 patch.replace_set; the static klp_patch holds the TOML value too."""
    defn = parse_definition("livepatch = true\nreplace_set = 2\n", Path("lp_rs.toml"))
    src = generate_module(defn, REPLACE_SET_KERNEL)
    assert (
        "static int __klpsim_replace_set = 2;\n"
        "module_param_named(replace_set, __klpsim_replace_set, int, 0644);"
    ) in src
    assert "\t.replace_set = 2,\n};" in src
    assert (
        "\t__klpsim_patch.replace_set = __klpsim_replace_set;\n"
        "\treturn klp_enable_patch(&__klpsim_patch);"
    ) in src
    assert "replace;" not in src and ".replace =" not in src and "(replace," not in src


def test_replace_set_above_int_max_wraps_as_c_does():
    defn = parse_definition("livepatch = true\nreplace_set = 4294967295\n", Path("lp_rs.toml"))
    src = generate_module(defn, REPLACE_SET_KERNEL)
    assert "static int __klpsim_replace_set = (int)4294967295U;" in src
    assert "\t.replace_set = 4294967295,\n};" in src


def test_replace_is_ignored_on_the_replace_set_kernel():
    """Definitions are portable: the replace-set kernel has no replace, and
    ignores it as the model's replace-set profile does; Debian's kernels
    ignore replace_set."""
    defn = parse_definition("livepatch = true\nreplace = true\n", Path("lp_r.toml"))
    src = generate_module(defn, REPLACE_SET_KERNEL)
    assert "static int __klpsim_replace_set = 0;" in src
    assert "__klpsim_replace " not in src and ".replace =" not in src
    defn = parse_definition("livepatch = true\nreplace_set = 2\n", Path("lp_rs.toml"))
    assert "replace_set" not in generate_module(defn, DEBIAN)


def test_m_show_replacement_is_a_seq_file_show():
    """The two static m_show() (/proc/modules, /proc/mounts) are seq_file
    show functions: the replacement prints its line and returns 0."""
    defn = parse_definition(
        'livepatch = true\n[[objects]]\nname = "vmlinux"\n'
        'funcs = [{ old_name = "m_show", old_sympos = 2 }]\n',
        Path("lp_dup.toml"),
    )
    obj = defn.objects[0]
    assert signature(obj, obj.funcs[0]) is Signature.SHOW
    src = generate_module(defn, REPLACE_SET_KERNEL)
    assert "static noinline int livepatch_m_show(struct seq_file *m, void *v)" in src
    assert '.old_name = "m_show", .new_func = livepatch_m_show, .old_sympos = 2UL' in src


def test_signature_classes_and_return():
    text = """livepatch = true
[[objects]]
name = "vmlinux"
funcs = [
  { old_name = "version_proc_show", output = "v", return = 0 },
  { old_name = "__x64_sys_getppid", return = 42 },
  { old_name = "vfs_read.isra.0", return = -5 },
]
"""
    defn = parse_definition(text, Path("lp_sig.toml"))
    obj = defn.objects[0]
    assert [signature(obj, f) for f in obj.funcs] == [
        Signature.SHOW,
        Signature.SYSCALL,
        Signature.UNKNOWN,
    ]
    src = generate_module(defn, DEBIAN)
    assert "static noinline long livepatch___x64_sys_getppid(const struct pt_regs *regs)\n{\n" \
        "\treturn 42;\n}" in src  # fmt: skip
    assert "the signature of vfs_read.isra.0 is unknown" in src
    assert "static noinline long livepatch_vfs_read_isra_0(void)\n{\n\treturn -5;\n}" in src
    assert '.old_name = "vfs_read.isra.0", .new_func = livepatch_vfs_read_isra_0' in src


def test_error_injection_entries():
    src = generate_module(parse_definition(
        'functions = ["a_alloc", "a_work"]\n[error_injection]\na_alloc = "ERRNO_NULL"\n',
        Path("mod_x.toml"),
    ), DEBIAN)  # fmt: skip
    assert "ALLOW_ERROR_INJECTION(a_alloc, ERRNO_NULL);" in src


def test_missing_function_is_the_kernels_to_refuse():
    """The generator builds it; loading it fails as on the model's kernel."""
    src = generate_module(load_definition(DEFS / "klpsim_lp_missing.toml"), DEBIAN)
    assert '.old_name = "klpsim_no_such_function"' in src
    script = DEFS.parent / "missing.sh"
    r = klpsim("run", "--kernel", "6.12", "--dmesg", "--modules", str(DEFS), str(script))
    assert r.status == 0, r.err
    assert r.out.splitlines()[-3:] == [
        "livepatch: symbol 'klpsim_no_such_function' not found in symbol table",
        "insmod: ERROR: could not insert module test_modules/klpsim_lp_missing.ko: "
        "Invalid parameters",
        "klpsim_lp_missing: done",
    ]


def test_module_names_in_script():
    script = """start_test "x"
load_mod a_mod arg=1
load_lp lp_one replace=1  # comment
load_failing_mod lp_two
insmod test_modules/lp_three.ko
insmod lp_one
check_result "% insmod test_modules/not_a_module.ko
load_lp inside_quotes"
"""
    assert module_names_in(script) == ["a_mod", "lp_one", "lp_two", "lp_three"]


def test_filters():
    log = [
        "livepatch: kernel.ftrace_enabled = 1",
        "livepatch kselftest timestamp: 2026-01-01",
        "===== TEST: one =====",
        "% insmod test_modules/test_klp_livepatch.ko",
        "test_klp_livepatch: loading out-of-tree module taints kernel.",
        "[    1.234567] livepatch: enabling patch 'test_klp_livepatch'",
        "something else",
    ]
    assert check_result_view(log) == [
        "livepatch: kernel.ftrace_enabled = 1",
        "===== TEST: one =====",
        "% insmod test_modules/test_klp_livepatch.ko",
        "livepatch: enabling patch 'test_klp_livepatch'",
    ]
    assert functions_sh_filter(log)[1:] == check_result_view(log)[2:]
    assert count_results("TEST: a ... ok\nTEST: b ... not ok\n") == (["a"], ["b"])


def test_cli_errors_are_one_line(capsys):
    assert main(["--kernel", "5.10", "x.sh"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("klpsim vm: argument --kernel")
    assert main(["/nonexistent/script.sh"]) == 2
    assert capsys.readouterr().err == "klpsim vm: /nonexistent/script.sh: no such file\n"
    assert main([]) == 2


def test_guest_stops_at_every_simulator_only_verb():
    """klpsim.sh defines a dying function for each verb of the simulator,
    BPF and status families (kill excepted: the guest's shell has one)."""
    text = (Path(__file__).parents[1] / "src/klpsim/real/vm/data/klpsim.sh").read_text()
    listed = re.search(r"for klpsim_verb in ([^;]*); do", text)
    assert listed is not None
    families = {"simulator", "bpf", "status"}
    verbs = {v.name for v in default_registry().verbs.values() if v.family in families}
    assert set(listed.group(1).replace("\\\n", " ").split()) == verbs - {"kill"}
