"""Who may attach what: the error-injection list and the BPF attach rules,
on 7.1 and replace-set (and where the config differs, on Debian's 6.12)."""

import pytest

from harness import ROOT, Sim
from klpsim.kernel.errno import (
    EADDRNOTAVAIL,
    EAGAIN,
    EBUSY,
    EILSEQ,
    EINVAL,
    ENOENT,
    EOPNOTSUPP,
    ERANGE,
    ESRCH,
)
from klpsim.kernel.module import FunctionSpec, ModuleSpec
from klpsim.livepatch.structs import KlpFunc, KlpObject
from klpsim.modules.base import LivepatchCode
from klpsim.trace.bpf import AttachError
from klpsim.trace.events import LinkKind

MODULES = [ROOT / "tests" / "scenarios" / "bpf" / "test_modules"]
PROFILES = ["7.1", "replace-set"]
EI_LIST = "/sys/kernel/debug/error_injection/list"


def sim(profile, **kw) -> Sim:
    return Sim(profile, module_dirs=MODULES, **kw)


def attach(s, kind, func, **kw):
    objname, _, name = func.rpartition(":")
    return s.system.bpf.attach(LinkKind(kind), [(objname or None, name)], **kw)


def refused(s, kind, func, **kw) -> AttachError:
    with pytest.raises(AttachError) as e:
        attach(s, kind, func, **kw)
    return e.value


# -- the list ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_vmlinux_list_has_syscalls_and_failslab(profile):
    lines = sim(profile).read(EI_LIST).splitlines()
    assert "__x64_sys_getpid\tERRNO" in lines
    assert "should_failslab\tERRNO" in lines
    assert "should_fail_alloc_page\tTRUE" in lines
    assert all(line.startswith("__x64_sys_") or "should_fail" in line for line in lines)


@pytest.mark.parametrize("profile", PROFILES)
def test_module_entries_come_and_go_with_the_module(profile):
    s = sim(profile)
    s.sh("load_mod mod_ei")
    assert s.read(EI_LIST).splitlines()[-1] == "mod_ei_alloc [mod_ei]\tERRNO_NULL"
    ei = s.system.error_injection
    alloc = s.kernel.kallsyms.objects["mod_ei"].lookup("mod_ei_alloc")
    assert ei.within_error_injection_list(alloc)
    s.sh("unload_mod mod_ei")
    assert "mod_ei" not in s.read(EI_LIST)
    assert not ei.within_error_injection_list(alloc)


def test_no_list_without_function_error_injection():
    s = sim("6.12")  # Debian: CONFIG_FUNCTION_ERROR_INJECTION is not set
    assert s.kernel.fs.lookup(EI_LIST) is None
    assert s.kernel.fs.lookup("/sys/kernel/debug/fail_function") is None
    s2 = sim("7.1", config_overrides={"FUNCTION_ERROR_INJECTION": False})
    assert s2.kernel.fs.lookup(EI_LIST) is None
    # the replace-set kernel (rskernel.py): the list, but no CONFIG_FAIL_FUNCTION
    s3 = sim("7.1", config_overrides={"FAIL_FUNCTION": False})
    assert s3.kernel.fs.lookup(EI_LIST) is not None
    assert s3.kernel.fs.lookup("/sys/kernel/debug/fail_function") is None


# -- bpf_override_return --------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_override_needs_entry_of_listed_function(profile):
    s = sim(profile)
    assert attach(s, "kprobe", "__x64_sys_getppid", override=-1).kind is LinkKind.KPROBE
    assert refused(s, "kprobe", "cmdline_proc_show", override=-1).errno == -EINVAL
    # a probe in the body is registered first, then the override refused
    assert refused(s, "kprobe", "__x64_sys_getppid", offset=0x10, override=-1).errno == -EINVAL
    assert not s.system.kprobes.probes[1:]  # the refused one is gone again
    # with IBT, func+4 (past endbr64) is the entry too (arch_adjust_kprobe_addr())
    attach(s, "kprobe", "__x64_sys_getppid", offset=4, override=-2)
    # without an override the same kprobes attach
    attach(s, "kprobe", "cmdline_proc_show")
    attach(s, "kprobe", "__x64_sys_getppid", offset=0x10)


def test_misplaced_override_probe_fails_with_the_kprobe_errno():
    """perf_event_open() registers the kprobe before the program is attached:
    func+4 inside the call to __fentry__ (no IBT) is -EILSEQ, not -EINVAL
    (measured on the replace-set kernel: mod_ei_alloc+0x4)."""
    s = sim("7.1", config_overrides={"X86_KERNEL_IBT": False})
    assert refused(s, "kprobe", "__x64_sys_getppid", offset=4, override=-1).errno == -EILSEQ


@pytest.mark.parametrize(("profile", "line"), [
    ("6.12", "program of this type cannot use helper bpf_override_return#58"),
    ("6.1", "unknown func bpf_override_return#58"),  # before 6.10
])  # fmt: skip
def test_verifier_wording_of_a_missing_helper(profile, line):
    """Measured: Debian's 6.1 and 6.12 refuse the override program so."""
    e = refused(sim(profile), "kprobe", "cmdline_proc_show", override=-1)
    assert (e.errno, e.log) == (-EINVAL, (line,))


@pytest.mark.parametrize("profile", ["7.1", "replace-set", "6.12"])
def test_override_helper_needs_config(profile):
    kw = {} if profile == "6.12" else {"config_overrides": {"BPF_KPROBE_OVERRIDE": False}}
    s = sim(profile, **kw)
    e = refused(s, "kprobe", "__x64_sys_getppid", override=-1)
    assert e.errno == -EINVAL
    assert e.log == ("program of this type cannot use helper bpf_override_return#58",)


@pytest.mark.parametrize("profile", PROFILES)
def test_kprobe_multi_checks_every_address(profile):
    s = sim(profile)
    bpf = s.system.bpf
    ok = bpf.attach(LinkKind.KPROBE_MULTI, [(None, "__x64_sys_getppid"), (None, "__x64_sys_getpid")],
                    override=-1)  # fmt: skip
    assert len(ok.targets) == 2
    with pytest.raises(AttachError) as e:
        bpf.attach(LinkKind.KPROBE_MULTI, [(None, "__x64_sys_getppid"), (None, "cmdline_proc_show")],
                   override=-1)  # fmt: skip
    assert e.value.errno == -EINVAL


# -- fmod_ret, fentry, fexit --------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_fmod_ret_only_on_listed_or_security(profile):
    s = sim(profile)
    attach(s, "fmod_ret", "__x64_sys_uname", ret=-1)
    attach(s, "fmod_ret", "security_file_open")
    e = refused(s, "fmod_ret", "cmdline_proc_show")
    assert (e.errno, e.log) == (-EINVAL, ("cmdline_proc_show() is not modifiable",))


def test_fmod_ret_without_error_injection_only_security():
    s = sim("6.12")
    attach(s, "fmod_ret", "security_task_kill")
    assert refused(s, "fmod_ret", "__x64_sys_uname").errno == -EINVAL


def test_no_lsm_hooks_without_security():
    """Measured on the replace-set kernel (no CONFIG_SECURITY): the hooks are
    inline stubs, so a loader finds no security_file_open to attach to."""
    s = sim("6.12", config_overrides={"SECURITY": False})
    assert s.kernel.kallsyms.lookup_name("security_file_open") is None
    assert refused(s, "fmod_ret", "security_file_open").errno == -ESRCH


@pytest.mark.parametrize("profile", PROFILES)
def test_fentry_fexit_anywhere_traceable(profile):
    s = sim(profile)
    attach(s, "fentry", "cmdline_proc_show")
    attach(s, "fexit", "kfree")
    # notrace: in BTF, but bpf_arch_text_poke() finds no nop5 (measured: 6.1, 6.12)
    assert refused(s, "fentry", "__schedule").errno == -EBUSY
    assert refused(s, "fexit", "no_such_function").errno == -ESRCH
    assert refused(s, "kprobe", "no_such_function").errno == -ENOENT
    # SYSCALL_DEFINE0's entry points are aliases without BTF (measured: 6.1, 6.12)
    assert refused(s, "fexit", "__x64_sys_getppid").errno == -ESRCH
    assert refused(s, "fmod_ret", "__x64_sys_sync", ret=-1).errno == -ESRCH
    attach(s, "kprobe", "__x64_sys_getppid")  # kallsyms has it


@pytest.mark.parametrize("profile", PROFILES)
def test_kprobe_link_goes_through_trace_kprobe(profile):
    """A BPF kprobe is a perf kprobe event: create_local_trace_kprobe()."""
    s = sim(profile)
    e = refused(s, "kprobe", "__schedule")  # notrace (measured: 6.12, replace-set kernel)
    assert e.errno == -EINVAL
    assert s.kernel.log.dmesg(notime=True)[-1] == (
        "trace_kprobe: Could not probe notrace function __schedule"
    )
    assert refused(s, "kprobe", "m_show").errno == -EADDRNOTAVAIL  # two functions


@pytest.mark.parametrize(("profile", "ok", "bad"), [
    ("6.1", 0xD, 0x11),  # measured on Debian's 6.1 ...
    ("6.12", 0x11, 0xD),  # ... and 6.12 (its code moved by endbr64)
])  # fmt: skip
def test_kprobe_inside_an_instruction_is_refused(profile, ok, bad):
    s = sim(profile)
    attach(s, "kprobe", "cmdline_proc_show", offset=ok)
    assert refused(s, "kprobe", "cmdline_proc_show", offset=bad).errno == -EILSEQ


@pytest.mark.parametrize("profile", ["6.1", "7.1"])
def test_kprobe_multi_needs_fprobe(profile):
    """Measured: Debian's 6.1 and the replace-set kernel have no CONFIG_FPROBE."""
    s = sim(profile, config_overrides={"FPROBE": False})
    e = refused(s, "kprobe_multi", "cmdline_proc_show")
    assert e.errno == -EOPNOTSUPP
    assert sim("6.1").system.kernel.has_config("FPROBE") is False


@pytest.mark.parametrize("profile", PROFILES)
def test_tracing_programs_pin_their_module_kprobes_do_not(profile):
    s = sim(profile)
    s.sh("load_mod mod_ei")
    kp = attach(s, "kprobe", "mod_ei:mod_ei_work")
    fexit = attach(s, "fexit", "mod_ei:mod_ei_work")
    assert s.kernel.modules.delete_module("mod_ei") == -EAGAIN
    s.system.bpf.detach(fexit)
    assert s.kernel.modules.delete_module("mod_ei") == 0
    assert not kp.kprobes[0].registered  # went with the module's text


# -- RFC 2/4: CONFIG_KPROBE_OVERRIDE_KLP_FUNC ----------------------------------------------------


class HookPatch(LivepatchCode):
    def objects(self):
        return [KlpObject(None, [KlpFunc("cmdline_proc_show", self.sym("lp_show"))])]


HOOK_SPEC = ModuleSpec(
    "lp_hooks",
    HookPatch,
    livepatch=True,
    functions=(FunctionSpec("lp_show", lambda ctx, *a: 0), FunctionSpec("lp_helper")),
)


def _with_hook_patch(profile, rfc: bool) -> Sim:
    s = sim(profile, config_overrides={"KPROBE_OVERRIDE_KLP_FUNC": True} if rfc else {})
    s.rt.resolver._cache["lp_hooks"] = HOOK_SPEC
    s.sh("load_lp lp_hooks\nload_mod mod_ei")
    return s


@pytest.mark.parametrize("profile", PROFILES)
def test_rfc_2_4_admits_any_livepatch_function_helpers_too(profile):
    s = _with_hook_patch(profile, rfc=True)
    attach(s, "kprobe", "lp_hooks:lp_show", override=-1)  # the new_func
    attach(s, "kprobe", "lp_hooks:lp_helper", override=-1)  # Miroslav Benes' objection
    # ... but only livepatch modules, and only perf kprobes
    assert refused(s, "kprobe", "mod_ei:mod_ei_work", override=-1).errno == -EINVAL
    with pytest.raises(AttachError):
        s.system.bpf.attach(LinkKind.KPROBE_MULTI, [("lp_hooks", "lp_show")], override=-1)
    # fmod_ret was not touched by the RFC either
    assert refused(s, "fmod_ret", "lp_hooks:lp_show").errno == -EINVAL


@pytest.mark.parametrize("profile", PROFILES)
def test_without_rfc_livepatch_functions_are_not_overridable(profile):
    s = _with_hook_patch(profile, rfc=False)
    assert refused(s, "kprobe", "lp_hooks:lp_show", override=-1).errno == -EINVAL
    assert refused(s, "kprobe", "lp_hooks:lp_helper", override=-1).errno == -EINVAL


def test_rfc_option_from_the_command_line(tmp_path):
    from harness import klpsim

    script = tmp_path / "s.sh"
    script.write_text("load_lp test_klp_livepatch\n"
                      "bpf_attach kprobe test_klp_livepatch:livepatch_cmdline_proc_show "
                      "--override 1\n")  # fmt: skip
    off = klpsim("run", "--kernel", "7.1", str(script))
    on = klpsim("run", "--kernel", "7.1", "--config", "CONFIG_KPROBE_OVERRIDE_KLP_FUNC=y",
                str(script))  # fmt: skip
    assert "Invalid argument (EINVAL)" in off.err
    assert "bpf1: kprobe test_klp_livepatch:livepatch_cmdline_proc_show attached" in on.out


# -- fail_function -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_fail_function_inject_rules(profile):
    s = sim(profile)
    inject = "/sys/kernel/debug/fail_function/inject"
    assert s.write(inject, "no_such_function") == -EINVAL
    assert s.write(inject, "cmdline_proc_show") == -ERANGE
    assert s.write(inject, "__x64_sys_getppid") > 0
    assert s.write(inject, "__x64_sys_getppid") == -EBUSY
    assert s.read("/sys/kernel/debug/fail_function/__x64_sys_getppid/retval") == (
        "ffffffffffffffea"  # adjust_error_retval(ERRNO, 0) == -EINVAL
    )
    assert s.read("/sys/kernel/debug/kprobes/list").endswith("[FTRACE]")
    assert s.write(inject, "!__x64_sys_getppid") > 0
    assert s.write(inject, "!__x64_sys_getppid") == -ENOENT


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("bpf_attach uprobe f", "unknown type 'uprobe'"),
        ("bpf_attach fentry f --override 1", "--override is for kprobe and kprobe_multi"),
        ("bpf_attach kprobe f --ret 1", "--ret is for fmod_ret programs"),
        ("bpf_attach kprobe f --override x", "--override: expected a number"),
        ("bpf_attach fentry f+0x4", "FUNC+OFFSET is for kprobes only"),
        ("bpf_attach kprobe f --bogus", "bad option '--bogus'"),
        ("bpf_detach", "usage: bpf_detach NAME"),
    ],
)
def test_bad_verb_lines_exit_2(tmp_path, line, msg):
    from harness import klpsim

    script = tmp_path / "bad.sh"
    script.write_text(f"echo hi\n{line}\n")
    run = klpsim("run", str(script))
    assert run.status == 2
    assert msg in run.err
    assert run.err.count("\n") == 1
