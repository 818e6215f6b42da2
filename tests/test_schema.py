"""One module schema, two consumers: the model's module builder and the C
generator for real kernels must give the same verdict on every definition.

Every TOML module definition in the repository must be accepted by both,
and every file in tests/data/bad-toml refused by both with the one-line
message its header gives (``# expect: ...``).
"""

import re
from pathlib import Path

import pytest

from klpsim.livepatch.profiles import get_profile
from klpsim.model.schema import DefinitionError, LivepatchDef, parse_definition
from klpsim.modules.resolver import ModuleError, ModuleResolver
from klpsim.real.vm.modgen import DEBIAN, REPLACE_SET_KERNEL, KernelCapabilities, generate_file
from klpsim.session import Session

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "data" / "bad-toml"
GOOD = sorted(
    p
    for p in ROOT.rglob("*.toml")
    if p.name != "pyproject.toml" and BAD not in p.parents and ".venv" not in p.parts
)
BAD_FILES = sorted(BAD.glob("*.toml"))
PROFILES = ["7.1", "6.1", "replace-set", "replaceable"]
#: The generator's kernels, each with the model's profile of that kernel.
KERNELS = {"6.12": DEBIAN, "replace-set": REPLACE_SET_KERNEL}


def model_verdict(path: Path, profile: str) -> str:
    """'ok' or the message: the model's reader, then a load into a booted kernel."""
    reader = ModuleResolver(get_profile(profile)).readers[".toml"]
    try:
        spec = reader(path)
    except ModuleError as e:
        return str(e)
    system = Session(profile).system
    ret = system.kernel.modules.load_module(spec, [])
    assert ret <= 0  # any errno is the kernel's verdict, but no crash
    return "ok"


def generator_verdict(path: Path, caps: KernelCapabilities) -> str:
    try:
        _, source = generate_file(path, caps)
    except DefinitionError as e:
        return str(e)
    assert 'MODULE_LICENSE("GPL");' in source
    return "ok"


def test_the_corpus_is_large_enough():
    assert len(GOOD) >= 40
    assert len(BAD_FILES) >= 30


@pytest.mark.parametrize("path", GOOD, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_definition_in_the_repository_is_accepted_by_both(path):
    for caps in KERNELS.values():
        assert generator_verdict(path, caps) == "ok", caps
    for profile in PROFILES:
        assert model_verdict(path, profile) == "ok", profile


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name[:40])
def test_bad_definitions_are_refused_by_both_alike(path):
    header = path.read_bytes().split(b"\n")[:2]
    assert header[0].startswith(b"# wrong: ")
    expect = header[1].decode().removeprefix("# expect: ")
    message = f"{path}: {expect}"
    assert "\n" not in message
    for caps in KERNELS.values():
        assert generator_verdict(path, caps) == message, caps
    for profile in PROFILES:
        assert model_verdict(path, profile) == message, profile


def test_messages_escape_control_characters():
    text = 'livepatch = true\n[[objects]]\nname = "vm\\u0007\\u2028x"\n'
    with pytest.raises(DefinitionError) as e:
        parse_definition(text, Path("lp.toml"))
    assert str(e.value) == (
        "lp.toml: key 'objects[0].name': 'vm\\x07\\u2028x' is not a module name "
        "(letters, digits and '_')"
    )


def test_portable_fields_each_kernel_takes_its_own():
    """replace, replace_set and replaceable together: each kernel keeps the
    fields its struct klp_patch has, as module parameters, and ignores the rest."""
    text = "livepatch = true\nreplace = true\nreplace_set = 3\nreplaceable = true\n"
    defn = parse_definition(text, Path("lp_all.toml"))
    assert isinstance(defn, LivepatchDef)
    from klpsim.modules.definition import build_module
    from klpsim.real.vm.modgen import generate_module

    params = {
        p: {s.name: s.default for s in build_module(defn, get_profile(p)).params}
        for p in ("7.1", "6.12", "replace-set", "replaceable")
    }
    assert params == {
        "7.1": {"replace": 1},
        "6.12": {"replace": 1},
        "replace-set": {"replace_set": 3},
        "replaceable": {"replace": 1, "replaceable": 1},
    }
    source = generate_module(defn, DEBIAN)
    assert "module_param_named(replace, __klpsim_replace, int, 0644);" in source
    assert "replace_set" not in source and "replaceable" not in source
    # The generator's kernels take what the model's profile of each takes.
    for kernel, caps in KERNELS.items():
        source = generate_module(defn, caps)
        generated = {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"^static int __klpsim_(\w+) = (\d+);$", source, re.M)
        }
        assert generated == params[kernel], kernel
        for name in generated:
            assert f"module_param_named({name}, __klpsim_{name}, int, 0644);" in source
            assert f"\t__klpsim_patch.{name} = __klpsim_{name};" in source


def test_hook_keys_register_the_same_hooks_on_both_sides():
    """[[ftrace_ops]] and [[kprobes]]: the generated C registers what the
    model's module registers, and each handler logs the line the model logs."""
    path = ROOT / "tests" / "data" / "good-toml" / "hooks_all.toml"
    from klpsim.real.vm.modgen import generate_module

    defn = parse_definition(path.read_text(), path)
    source = generate_module(defn, DEBIAN)
    assert [ln.strip() for ln in source.splitlines() if "register_" in ln and "(&" in ln] == [
        "ret = register_ftrace_function(&__klpsim_ops0);",
        "ret = register_ftrace_function(&__klpsim_ops1);",
        "ret = register_kprobe(&__klpsim_kp0);",
        "ret = register_kprobe(&__klpsim_kp1);",
    ]
    assert ".flags = FTRACE_OPS_FL_SAVE_REGS," in source and ".flags = 0," in source
    assert ".post_handler = __klpsim_kp1_post," in source and "__klpsim_kp0_post" not in source
    assert 'pr_info("ftrace_ops1 %ps: regs ip %ps\\n"' in source
    assert 'pr_info("kprobe1 post_handler %s\\n", p->symbol_name);' in source
    s = Session("6.12", definitions={"hooks_all": path.read_text()})
    assert s.run("load_mod hooks_all") == 0
    n = len(s.dmesg())
    s.run("cat /proc/hooks_all/hooks_all_show /proc/version /proc/cmdline /proc/meminfo")
    assert s.dmesg()[n:] == [
        "hooks_all: ftrace_ops0 hooks_all_show [hooks_all]: regs ip hooks_all_show [hooks_all]",
        "hooks_all: ftrace_ops1 version_proc_show: regs ip version_proc_show",
        "hooks_all: kprobe0 pre_handler cmdline_proc_show",
        "hooks_all: ftrace_ops0 cmdline_proc_show: regs ip cmdline_proc_show",
        "hooks_all: kprobe1 pre_handler meminfo_proc_show",
        "hooks_all: kprobe1 post_handler meminfo_proc_show",
    ]
    assert s.run("rmmod hooks_all") == 0
    assert s.system.kprobes is not None and s.system.kprobes.probes == []


def test_replace_set_is_an_int_parameter_in_a_u32_field():
    """v2 4/4: an int module parameter copied into the u32 klp_patch field.
    The model's TOML module and the generated C make the same int of a u32
    above INT_MAX, and replace_set=-1 is set 4294967295 (as
    tests/real/test_replace_set_real.py checks on the real kernel)."""
    from klpsim.real.vm.modgen import generate_module

    text = "livepatch = true\nreplace_set = 4294967295\n"
    assert "static int __klpsim_replace_set = (int)4294967295U;" in generate_module(
        parse_definition(text, Path("lp_big.toml")), REPLACE_SET_KERNEL
    )
    s = Session("replace-set", definitions={"lp_big": text})
    fs = s.system.kernel.fs
    for line, name in (
        ("load_lp lp_big", "lp_big"),
        ("load_lp test_klp_atomic_replace replace_set=-1", "test_klp_atomic_replace"),
    ):
        assert s.run(line) == 0
        assert fs.read(f"/sys/module/{name}/parameters/replace_set") == "-1\n"
        assert fs.read(f"/sys/kernel/livepatch/{name}/replace_set") == "4294967295\n"
    # Both are set 4294967295: the second replaced the first.
    assert fs.listdir("/sys/kernel/livepatch") == ["test_klp_atomic_replace"]
    assert s.run("unload_lp lp_big") == 0
    # kstrtoint() refuses what does not fit an int.
    assert s.run("load_failing_mod lp_big replace_set=4294967295") == 0
    assert "lp_big: `4294967295' invalid for parameter `replace_set'" in s.dmesg()


def test_every_int_parameter_wraps_into_its_klp_patch_field_as_c_does():
    """The test modules' int replace parameter: !!x into mainline's bool,
    the u32 conversion into the replace-tag draft's tag."""
    for profile, shown in (("7.1", "1\n"), ("replace-tag", "4294967295\n")):
        s = Session(profile)
        assert s.run("load_lp test_klp_atomic_replace replace=-1") == 0
        fs = s.system.kernel.fs
        assert fs.read("/sys/module/test_klp_atomic_replace/parameters/replace") == "-1\n"
        assert fs.read("/sys/kernel/livepatch/test_klp_atomic_replace/replace") == shown, profile
