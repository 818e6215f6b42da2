"""TOML module definitions -> C, and the parts of the tier that need no guest."""

from __future__ import annotations

from pathlib import Path

import pytest

from klpsim.real.vm.api import module_names_in
from klpsim.real.vm.cli import main
from klpsim.real.vm.errors import VMError
from klpsim.real.vm.modgen import generate_module, load_definition, parse_definition
from klpsim.real.vm.selftests import check_result_view, count_results, functions_sh_filter

DEFS = Path(__file__).parent / "defs"
SYMS = {"cmdline_proc_show": 1, "version_proc_show": 1, "meminfo_proc_show": 1}


def test_livepatch_source():
    src = generate_module(load_definition(DEFS / "klpsim_lp_a.toml"), SYMS, "6.1.0-1-amd64")
    assert 'MODULE_LICENSE("GPL");' in src
    assert 'MODULE_INFO(livepatch, "Y");' in src
    assert "static int replace = 0;\nmodule_param(replace, int, 0644);" in src
    assert "\tklpsim_patch.replace = replace;\n\treturn klp_enable_patch(&klpsim_patch);" in src
    assert '{ .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show,' in src
    assert '{ .old_name = "version_proc_show", .new_func = lp_a_version,' in src
    assert '{ .name = "klpsim_mod_a", .funcs = klpsim_funcs_1 },' in src
    assert "{ .id = 7, .version = 2 }," in src
    assert 'seq_printf(m, "%s\\n", "klpsim_lp_a: cmdline");' in src


def test_replace_default_from_toml():
    src = generate_module(load_definition(DEFS / "klpsim_lp_b.toml"), SYMS, "6.12.1+deb12-amd64")
    assert "static int replace = 1;" in src
    assert '"klpsim_lp_b: this has been live patched"' in src


def test_target_module_source():
    src = generate_module(load_definition(DEFS / "klpsim_mod_a.toml"), None, "6.1.0-1-amd64")
    assert "noinline int klpsim_mod_a_show(struct seq_file *m, void *v)" in src
    assert "EXPORT_SYMBOL_GPL(klpsim_mod_a_work);" in src
    assert '"klpsim_mod_a: klpsim_mod_a_work: original output"' in src
    assert "livepatch" not in src


def test_missing_vmlinux_function_refused():
    mod = load_definition(DEFS / "klpsim_lp_missing.toml")
    with pytest.raises(VMError) as e:
        generate_module(mod, SYMS, "6.1.0-1-amd64")
    assert str(e.value) == (
        f"{DEFS / 'klpsim_lp_missing.toml'}: vmlinux has no function "
        "'klpsim_no_such_function' on 6.1.0-1-amd64 (checked against the kernel's symbol table)"
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({"livepatch": True, "replce": True}, "x.toml: replce: unknown key for a livepatch module"),
        ({"functions": ["ok", "not ok"]}, "x.toml: functions[1]: 'not ok' is not a C identifier"),
        ({"livepatch": True, "replace": 1}, "x.toml: replace: expected bool, got int"),
        (
            {"livepatch": True, "objects": [{"name": "vmlinux", "funcs": [{"old": "f"}]}]},
            "x.toml: objects[0].funcs[0].old: unknown key",
        ),
        ({"livepatch": True, "states": [{"version": 1}]}, "x.toml: states[0].id: missing"),
        ({}, "x.toml: functions: missing (a plain module lists its functions)"),
    ],
)
def test_bad_definitions(data, message):
    with pytest.raises(VMError) as e:
        parse_definition("x", Path("x.toml"), data)
    assert str(e.value) == message


def test_replace_set_refused_on_debian():
    mod = parse_definition("x", Path("x.toml"), {"livepatch": True, "replace_set": 3})
    with pytest.raises(VMError, match="replace_set: Debian kernels have no replace sets"):
        generate_module(mod, SYMS, "6.12.1+deb12-amd64")


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


RS = ("replace_set",)  # the replace-set kernel's klp_patch fields


def test_replace_set_parameter_on_the_replace_set_kernel():
    mod = parse_definition("x", Path("x.toml"), {"livepatch": True, "replace_set": 2})
    src = generate_module(mod, SYMS, "6.12.117-klpsim-rs", RS)
    assert "static int replace_set = 2;\nmodule_param(replace_set, int, 0644);" in src
    assert "\tklpsim_patch.replace_set = replace_set;\n\treturn klp_enable_patch(" in src
    assert "replace;" not in src and ".replace =" not in src


def test_replace_set_above_int_max_wraps_as_c_does():
    mod = parse_definition("x", Path("x.toml"), {"livepatch": True, "replace_set": 2**32 - 1})
    src = generate_module(mod, SYMS, "6.12.117-klpsim-rs", RS)
    assert "static int replace_set = (int)4294967295U;" in src


def test_replace_refused_on_the_replace_set_kernel():
    mod = parse_definition("x", Path("x.toml"), {"livepatch": True, "replace": True})
    with pytest.raises(VMError) as e:
        generate_module(mod, SYMS, "6.12.117-klpsim-rs", RS)
    assert str(e.value) == "x.toml: replace: 6.12.117-klpsim-rs has replace sets (use replace_set)"
