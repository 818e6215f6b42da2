"""``.ko`` files in scenarios: ``load_lp X`` finds ``X.ko`` in a --modules
directory. The files are written byte by byte (elfmini.py, test_inspect.py);
tests/real/test_ko_vm.py loads real ones on the model and in the VM."""

from elfmini import A, Sec, Sym, W, X, elf
from harness import Sim, klpsim
from test_inspect import MODINFO, klp_patch_module


def sim(tmp_path, profile: str, **files: bytes) -> Sim:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return Sim(profile, module_dirs=[tmp_path])


def test_ambiguous_word_is_the_profile_kernels_own_field(tmp_path):
    # patch+24 holds 1, with neither DWARF nor modinfo to say which field it is
    s = sim(tmp_path, "6.12", **{"lp-mini.ko": klp_patch_module(1)})
    s.sh("load_lp lp_mini")  # found as lp-mini.ko, as kmod reads the name
    assert s.read("/sys/kernel/livepatch/lp_mini/replace") == "1"
    assert s.read("/proc/cmdline") == "lp_mini:livepatch_cmdline_proc_show"
    assert s.klp.patches[0].states[0].id == 5
    s = sim(tmp_path, "replace-set")
    s.sh("load_lp lp_mini")
    assert s.read("/sys/kernel/livepatch/lp_mini/replace_set") == "1"


def test_a_replace_parameter_on_the_insmod_line_is_honoured(tmp_path):
    s = sim(tmp_path, "6.12", **{"lp_mini.ko": klp_patch_module(1)})
    s.sh("load_lp lp_mini replace=0")
    assert s.read("/sys/kernel/livepatch/lp_mini/replace") == "0"
    assert s.read("/sys/module/lp_mini/parameters/replace") == "0"


def test_an_int_replace_set_parameter_wraps_into_the_u32(tmp_path):
    modinfo = "livepatch=Y\0" + MODINFO.replace("parmtype=replace:int", "parmtype=replace_set:int")
    s = sim(tmp_path, "replace-set", **{"lp_mini.ko": klp_patch_module(0, modinfo)})
    s.sh("load_lp lp_mini replace_set=-1")
    assert s.read("/sys/kernel/livepatch/lp_mini/replace_set") == "4294967295"


def test_a_bad_parameter_value_fails_as_the_kernel_parses_it(tmp_path):
    modinfo = "livepatch=Y\0" + MODINFO.replace("parmtype=replace:int", "parmtype=replace_set:uint")
    s = sim(tmp_path, "replace-set", **{"lp_mini.ko": klp_patch_module(0, modinfo)})
    s.sh("load_failing_mod lp_mini replace_set=-1")
    assert "lp_mini: `-1' invalid for parameter `replace_set'" in s.dmesg()


def plain_module() -> bytes:
    text = [Sym("tgt_show", ".text", 0x10), Sym("tgt_show", ".text", 0x20),
            Sym("tgt_init", ".init.text", 0), Sym("__ksymtab_tgt_api", ".data", 0, 12, 1, 1),
            Sym("tgt_api", ".text", 0x30, 0, 2, 1)]  # fmt: skip
    secs = [
        Sec(".text", bytes(64), A | X),
        Sec(".init.text", bytes(16), A | X),
        Sec(".data", bytes(16), A | W),
        Sec(".modinfo", b"name=tgt\0vermagic=6.12.0 SMP \0parmtype=level:byte\0", A),
    ]
    return elf(secs, text)


def test_a_plain_ko_loads_with_the_functions_of_its_symbol_table(tmp_path):
    s = sim(tmp_path, "6.12", **{"tgt.ko": plain_module()})
    s.sh("load_mod tgt level=7")
    names = [sym.name for sym in s.kernel.modules.modules["tgt"].text.symbols]
    assert names == ["tgt_show", "tgt_show", "tgt_api"]  # .init.text is gone once live
    assert s.kernel.modules.exported["tgt_api"] == "tgt"
    assert s.read("/sys/module/tgt/parameters/level") == "7"
    s.sh("unload_mod tgt\nload_failing_mod tgt level=256")
    assert "tgt: `256' invalid for parameter `level'" in s.dmesg()


def test_a_ko_that_is_no_module_is_one_line(tmp_path):
    (tmp_path / "test_modules").mkdir()
    (tmp_path / "test_modules" / "junk.ko").write_bytes(b"\x7fELF" + bytes(10))
    (tmp_path / "s.sh").write_text("load_lp junk\n")
    r = klpsim("run", str(tmp_path / "s.sh"))
    assert r.status == 2 and r.out == ""
    assert r.err == (
        f"klpsim: {tmp_path}/s.sh:1: {tmp_path}/test_modules/junk.ko: "
        "truncated: 14 bytes, shorter than an ELF header\n"
    )
