"""Who wins a call when BPF programs, kprobes and a livepatch share a
function, and what happens to attachments across patch life cycles; on 7.1
and replace-set. Section numbers refer to lpc26-truth.md."""

import pytest

from harness import ROOT, Sim
from klpsim.kernel.errno import EBADF, EBUSY, EPERM
from klpsim.model.health import attachment_health
from klpsim.trace.events import LinkKind, TrampolineFlag

MODULES = [ROOT / "tests" / "scenarios" / "bpf" / "test_modules"]
PROFILES = ["7.1", "replace-set"]
F = "__x64_sys_getppid"
# fmod_ret and fexit need a BTF id: __x64_sys_getppid (SYSCALL_DEFINE0) is an
# alias without one, syncfs has its own.
FS = "__x64_sys_syncfs"


CALL_ORIG, SHARE_IPMODIFY, ORIG_STACK = (
    TrampolineFlag.CALL_ORIG,
    TrampolineFlag.SHARE_IPMODIFY,
    TrampolineFlag.ORIG_STACK,
)


def sim(profile, **kw) -> Sim:
    return Sim(profile, module_dirs=MODULES, **kw)


def call(s, name=F):
    """(what ran, return value, programs that fired)."""
    sym = s.kernel.kallsyms.lookup_name(name)
    with s.system.events.capture() as events:
        target, ret = s.kernel.invoke(s.kernel.sched.current, sym, [])
    return (None if target is None else target.name), ret, [str(e) for e in events]


def attach(s, kind, func=F, **kw):
    objname, _, name = func.rpartition(":")
    return s.system.bpf.attach(LinkKind(kind), [(objname or None, name)], **kw)


def health(s):
    return {h.link.name: h.state for h in attachment_health(s.system)}


@pytest.mark.parametrize("profile", PROFILES)
def test_override_coexists_silently_and_order_decides(profile):
    """Row C, T4/T5/T11: no refusal either way; the older ops wins."""
    s = sim(profile)
    s.sh("load_lp lp_getppid")
    link = attach(s, "kprobe", override=-EPERM, name="ovr")  # newer than klp's ops
    ran, ret, events = call(s)
    assert (ran, ret) == ("lp_getppid_getppid", 0)
    assert events == ["kprobe ovr on __x64_sys_getppid: bpf_override_return(-1)"]
    assert s.system.ftrace.site_state(link.target) == "2:RIM"
    # T11a: reloading the livepatch puts its ops at the head
    s.sh("disable_lp lp_getppid\nunload_lp lp_getppid\nload_lp lp_getppid")
    assert call(s)[:2] == ("just_return_func", -EPERM)
    assert s.system.ftrace.site_state(link.target) == "2:RIM"  # byte-identical
    # T11b: re-attaching the program (last kprobe user) flips it back
    s.system.bpf.detach(link)
    attach(s, "kprobe", override=-EPERM, name="ovr")
    assert call(s)[:2] == ("lp_getppid_getppid", 0)


@pytest.mark.parametrize("profile", PROFILES)
def test_unrelated_kprobe_keeps_the_shared_ops_old(profile):
    """T10, T10': per ftrace_ops, not per consumer."""
    s = sim(profile)
    unrelated = attach(s, "kprobe", "version_proc_show")
    s.sh("load_lp lp_getppid")
    attach(s, "kprobe", override=-EPERM)
    assert call(s)[1] == -EPERM
    s.system.bpf.detach(unrelated)
    assert call(s)[1] == -EPERM


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("first", ["fmod_ret", "livepatch"])
def test_fmod_ret_wins_in_both_orders(profile, first):
    """Row D, T8/T9, with the ops_func command each order negotiates."""
    s = sim(profile)
    if first == "livepatch":
        s.sh("load_lp lp_syncfs")
    deny = attach(s, "fmod_ret", FS, ret=-EPERM)
    if first == "fmod_ret":
        s.sh("load_lp lp_syncfs")
    assert call(s, FS)[:2] == (None, -EPERM)
    tr = s.system.bpf.trampolines[deny.target]
    # fmod_ret first: klp's registration asks the trampoline (…_PEER); klp
    # first: the trampoline's registration gets -EAGAIN, is regenerated with
    # ORIG_STACK and registers again, asking once more (…_SELF twice).
    want = ["PEER"] if first == "fmod_ret" else ["SELF", "SELF"]
    assert tr.commands == [f"ENABLE_SHARE_IPMODIFY_{w}" for w in want]
    assert CALL_ORIG | SHARE_IPMODIFY | ORIG_STACK in tr.flags
    assert s.system.ftrace.site_state(deny.target) == "2:RIDM"
    # a pass-through fmod_ret lets the call reach new_func (T9)
    s.system.bpf.detach(deny)
    attach(s, "fmod_ret", FS, ret=0)
    assert call(s, FS)[:2] == ("lp_syncfs_syncfs", 7)


@pytest.mark.parametrize("profile", PROFILES)
def test_livepatch_leaving_stops_sharing(profile):
    s = sim(profile)
    s.sh("load_lp lp_syncfs")
    fexit = attach(s, "fexit", FS)
    s.sh("disable_lp lp_syncfs\nunload_lp lp_syncfs")
    tr = s.system.bpf.trampolines[fexit.target]
    assert tr.commands[-1] == "DISABLE_SHARE_IPMODIFY_PEER"
    assert ORIG_STACK not in tr.flags
    assert call(s, FS)[:2] == (FS, -EBADF)


@pytest.mark.parametrize("profile", PROFILES)
def test_observers_report_the_original(profile):
    """Rows F, K, M: fire once each, attribute the call to the original;
    fexit and kretprobe see new_func's return value."""
    s = sim(profile)
    s.sh("load_lp test_klp_livepatch")
    links = [attach(s, k, "cmdline_proc_show") for k in ("fentry", "fexit", "kprobe",
                                                          "kretprobe")]  # fmt: skip
    ran, ret, events = call(s, "cmdline_proc_show")
    assert ran == "livepatch_cmdline_proc_show"
    assert all(link.hits == 1 for link in links)
    assert all(link.seen[0].func == "cmdline_proc_show" for link in links)
    assert "fexit bpf2 on cmdline_proc_show: saw return 0" in events


@pytest.mark.parametrize("profile", PROFILES)
def test_breakpoint_in_a_patched_body_goes_quiet(profile):
    s = sim(profile)
    body = attach(s, "kprobe", "cmdline_proc_show", offset=0x10)
    call(s, "cmdline_proc_show")
    assert body.hits == 1
    # load_lp's modinfo and insmod read /proc/cmdline (kmod_new()) before
    # the patch is enabled: the original body runs twice more.
    s.sh("load_lp test_klp_livepatch")
    assert body.hits == 3
    call(s, "cmdline_proc_show")
    assert body.hits == 3
    assert health(s)[body.name] == "silent"


@pytest.mark.parametrize(("profile", "fixed"), [("7.1", False), ("replace-set", False),
                                                 ("6.12", True)])  # fmt: skip
def test_ipmodify_kprobe_after_livepatch(profile, fixed):
    """Row E, livepatch first: -EBUSY where __register_kprobe() returns the
    arming error (6.12, before 587e8e6d640b); 0 and a silently absent probe
    on 7.1 and replace-set."""
    s = sim(profile)
    s.sh("load_lp test_klp_livepatch")
    kprobes = s.system.kprobes
    kp = kprobes.new_kprobe("cmdline_proc_show", pre_handler=lambda *a: 0,
                            post_handler=lambda *a: None)  # fmt: skip
    ret = kprobes.register_kprobe(kp)
    assert ret == (-EBUSY if fixed else 0)
    assert s.read("/sys/kernel/debug/kprobes/list") == ""
    call(s, "cmdline_proc_show")
    assert kp.hits == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_ipmodify_kprobe_before_livepatch(profile):
    s = sim(profile)
    s.sh("load_mod test_klp_kprobe has_post_handler=true\nload_failing_mod test_klp_livepatch")
    assert call(s, "cmdline_proc_show")[0] == "cmdline_proc_show"


KP_POST = f'[[kprobes]]\nsymbol = "{F}"\npost_handler = true\n'


@pytest.mark.parametrize("profile", PROFILES)
def test_override_inside_an_ipmodify_armed_aggregate(profile):
    """A BPF kprobe joins an aggregate armed on kprobe_ipmodify_ops (its first
    probe has a post_handler): its override still ends the call, and health
    says so: the breakpoint in the body never fires, and neither does the
    older probe that aggr_pre_handler() no longer reaches."""
    s = sim(profile, definitions={"kp_post": KP_POST})
    s.sh("load_mod kp_post")
    kprobes = s.system.kprobes
    assert kprobes.ipmodify_ops.enabled and not kprobes.ftrace_ops.enabled
    older = attach(s, "kprobe", name="older")
    ovr = attach(s, "kprobe", override=-EPERM, name="ovr")
    body = attach(s, "kprobe", offset=0x10, name="body")
    ap = kprobes.get_kprobe(ovr.kprobes[0].addr, ovr.kprobes[0].addr_off)
    assert ap.aggr and ap.list == [ovr.kprobes[0], older.kprobes[0], *kprobes.probes[:1]]
    assert kprobes.armed_on(ovr.kprobes[0]) is kprobes.ipmodify_ops
    assert health(s) == {"older": "silent", "ovr": "active", "body": "silent"}
    n = len(s.dmesg())
    ran, ret, events = call(s)
    assert (ran, ret) == ("just_return_func", -EPERM)
    assert events == ["kprobe ovr on __x64_sys_getppid: bpf_override_return(-1)"]
    assert (older.hits, ovr.hits, body.hits) == (0, 1, 0)
    assert s.dmesg()[n:] == []  # kp_post's handlers are not reached either
    s.system.bpf.detach(ovr)
    assert health(s) == {"older": "active", "body": "active"}
    ran, ret, _ = call(s)
    assert (ran, older.hits, body.hits) == (F, 1, 1)


@pytest.mark.parametrize("profile", PROFILES)
def test_probe_on_new_func_silent_after_replace_then_gone(profile):
    s = sim(profile)
    s.sh("load_lp lp_getppid")
    newfunc = attach(s, "kprobe", "lp_getppid:lp_getppid_getppid", name="newfunc")
    orig = attach(s, "kprobe", name="orig")
    assert health(s) == {"newfunc": "active", "orig": "active"}
    s.sh("load_lp lp_getppid_v2")  # set 0 / replace=1: replaces lp_getppid
    assert health(s) == {"newfunc": "silent", "orig": "active"}
    call(s)
    assert (newfunc.hits, orig.hits) == (0, 1)
    s.sh("unload_lp lp_getppid")
    assert health(s) == {"newfunc": "gone", "orig": "active"}


def test_hook_patch_survives_updates_only_in_its_own_set():
    """The shipped example, in short: replace-set keeps the hook; 7.1's
    first atomic replace silences it."""
    example = ROOT / "examples"
    for profile, want in (("replace-set", ["active"] * 3), ("7.1", ["silent"] * 3)):
        s = Sim(profile, module_dirs=[example / "test_modules"])
        s.sh("load_mod bonding\nload_lp lp_bond_hook")
        attach(s, "kprobe", "lp_bond_hook:bond_get_slave_hook", override=2, name="hook")
        got = []
        for v in (1, 2, 3):
            s.sh(f"load_lp lp_fix_v{v}")
            got.append(health(s)["hook"])
            ran, ret, _ = call(s, "bond_xmit_3ad_xor_slave_get")
            assert ret == (2 if profile == "replace-set" else 0)
        assert got == want


@pytest.mark.parametrize("profile", PROFILES)
def test_a_trampoline_that_does_not_call_the_function_shares_as_it_is(profile):
    # bpf_tramp_ftrace_ops_func(): ENABLE_SHARE_IPMODIFY_SELF regenerates
    # (-EAGAIN) only a trampoline that calls the original without ORIG_STACK;
    # fentry alone does not call it.
    s = sim(profile)
    s.sh("load_lp lp_syncfs")
    link = attach(s, "fentry", FS)
    tr = s.system.bpf.trampolines[link.target]
    assert tr.commands == ["ENABLE_SHARE_IPMODIFY_SELF"]
    assert SHARE_IPMODIFY not in tr.flags and ORIG_STACK not in tr.flags


@pytest.mark.parametrize("profile", PROFILES)
def test_kprobe_multi_override_and_links_that_skip_the_function(profile):
    s = sim(profile)
    attach(s, "kprobe_multi", "__x64_sys_getpid")  # on another function: skipped
    attach(s, "kprobe_multi", F, override=-EPERM)
    assert call(s) == (
        "just_return_func",
        -EPERM,
        [f"kprobe_multi bpf2 on {F}: bpf_override_return(-1)"],
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_kprobe_multi_pins_the_module_of_its_functions(profile):
    s = Sim(profile, module_dirs=[ROOT / "tests" / "scenarios" / "replace-set" / "test_modules"])
    s.sh("load_mod tgt\nbpf_attach kprobe_multi tgt:tgt_show --name m")
    assert s.read("/sys/module/tgt/refcnt") == "1"
    status, _, err = s.rt.shell(["rmmod", "tgt"])
    assert (status, err) == (1, "rmmod: ERROR: Module tgt is in use\n")
    s.sh("bpf_detach m")
    assert s.read("/sys/module/tgt/refcnt") == "0"


@pytest.mark.parametrize("profile", PROFILES)
def test_fentry_with_ftrace_disabled_is_silent(profile):
    s = sim(profile)
    link = attach(s, "fentry", FS)
    assert s.system.bpf.is_armed(link)
    assert s.write("/proc/sys/kernel/ftrace_enabled", "0\n") == 2
    assert not s.system.bpf.is_armed(link)
    assert health(s) == {link.name: "silent"}


@pytest.mark.parametrize("profile", PROFILES)
def test_only_an_ipmodify_user_asks_a_trampoline_to_share(profile):
    # prepare_direct_functions_for_ipmodify(): a plain kprobe's ops is no
    # IPMODIFY user; a livepatch's is.
    s = sim(profile)
    link = attach(s, "fentry", FS)
    attach(s, "kprobe", FS)
    tr = s.system.bpf.trampolines[link.target]
    assert tr.commands == []
    s.sh("load_lp lp_syncfs")
    assert tr.commands == ["ENABLE_SHARE_IPMODIFY_PEER"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("getpid_first", [False, True])
def test_fail_function_on_a_livepatched_function_stays_off_its_site(profile, getpid_first):
    # kprobe_ipmodify_ops is shared by every IPMODIFY kprobe. On a livepatched
    # function arming fails with -EBUSY whether the ops is new (register) or
    # in use (filter); since 587e8e6d640b the kprobe stays registered, unarmed.
    # Either way the ops must not keep that function in its filter.
    s = sim(profile)
    s.sh("load_lp lp_getppid")
    inject = "/sys/kernel/debug/fail_function/inject"
    if getpid_first:
        assert s.write(inject, "__x64_sys_getpid\n") == 17
    assert s.write(inject, f"{F}\n") == len(F) + 1
    if not getpid_first:
        assert s.write(inject, "__x64_sys_getpid\n") == 17
    site = s.system.ftrace.site_state
    lookup = s.kernel.kallsyms.lookup_name
    assert (site(lookup(F)), site(lookup("__x64_sys_getpid"))) == ("1:IM", "1:RIM")
    s.write("/sys/kernel/debug/fail_function/probability", "100\n")
    s.write("/sys/kernel/debug/fail_function/times", "-1\n")
    assert call(s)[:2] == ("lp_getppid_getppid", 0)
    assert call(s, "__x64_sys_getpid")[:2] == ("just_return_func", -22)


@pytest.mark.parametrize("profile", PROFILES)
def test_trampoline_calls_just_return_func_and_loses_the_override(profile):
    """Measured on the replace-set kernel: an override whose kprobe ops is
    older than the livepatch's leaves regs->ip at just_return_func, and a
    CALL_ORIG trampoline (ORIG_STACK, next to the livepatch) calls it: the
    caller gets whatever rax held, not the override's value. Alone, the
    trampoline calls the original body and the override is lost."""
    from klpsim.trace.error_inject import RaxLeftover

    s = sim(profile)
    attach(s, "kprobe", FS, override=-EPERM, name="ovr")
    attach(s, "fexit", FS, name="exit")
    assert call(s, FS)[:2] == (FS, -EBADF)
    s.sh("load_lp lp_syncfs")
    ran, ret, events = call(s, FS)
    assert ran == "just_return_func" and isinstance(ret, RaxLeftover)
    assert events[-1] == "fexit exit on __x64_sys_syncfs: saw return <undefined>"
    s.system.bpf.detach(s.system.bpf.links["exit"])
    assert call(s, FS)[:2] == ("just_return_func", -EPERM)  # returned to: regs->ax
