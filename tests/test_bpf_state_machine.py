"""Random loads, disables, unloads, BPF attaches, detaches and calls, on 7.1
and replace-set. After every step the livepatch invariants hold (the checked
session) and so do the attachment ones:

* an active attachment fires on a call that reaches its function: the
  function itself, or for a livepatch's new_func the original it replaces;
* a silent one does not.
"""

import contextlib

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from klpsim.model.health import attachment_health, entry_for
from klpsim.session import Session
from klpsim.trace.bpf import AttachError
from klpsim.trace.events import LinkKind

FUNCS = ["cmdline_proc_show", "meminfo_proc_show", "__x64_sys_getppid", "__x64_sys_uname"]
KINDS = ["kprobe", "kprobe_override", "kprobe_body", "kretprobe", "kprobe_multi", "fentry",
         "fexit", "fmod_ret", "fmod_ret_pass"]  # fmt: skip

SETTINGS = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def patch_toml(funcs, replace, replace_set) -> str:
    lines = ["livepatch = true", f"replace = {'true' if replace else 'false'}",
             f"replace_set = {replace_set}", '[[objects]]\nname = "vmlinux"\nfuncs = [']  # fmt: skip
    lines += [f'  {{ old_name = "{f}" }},' for f in funcs]
    return "\n".join(lines + ["]"]) + "\n"


class AttachmentMachine(RuleBasedStateMachine):
    profile = "7.1"

    @initialize()
    def boot(self):
        self.session = Session(self.profile)
        self.system = self.session.system
        self.n = 0

    def step(self, line: str):
        # The livepatch invariants are about livepatch alone: they count
        # the livepatch's own module reference and read where livepatch
        # sends a call, so BPF links and overrides do not disturb them.
        violations = self.session.step(line, check=False)
        assert not violations, (line, violations)

    @property
    def lp_modules(self):
        return sorted(m for m in self.system.kernel.modules.modules if m.startswith("lp"))

    @property
    def patches(self):
        return sorted(self.system.kernel.fs.listdir("/sys/kernel/livepatch"))

    @rule(
        funcs=st.lists(st.sampled_from(FUNCS), min_size=1, max_size=2, unique=True),
        replace=st.booleans(),
        replace_set=st.integers(0, 1),
    )
    def load_patch(self, funcs, replace, replace_set):
        self.n += 1
        name = f"lp{self.n}"
        self.session.resolver.texts[name] = patch_toml(funcs, replace, replace_set)
        self.step(f"load_lp {name}")

    @precondition(lambda self: self.patches)
    @rule(data=st.data())
    def disable(self, data):
        self.step(f"disable_lp {data.draw(st.sampled_from(self.patches))}")

    @precondition(lambda self: self.lp_modules)
    @rule(data=st.data())
    def unload(self, data):
        self.step(f"rmmod {data.draw(st.sampled_from(self.lp_modules))}")

    @rule(kind=st.sampled_from(KINDS), data=st.data())
    def attach(self, kind, data):
        targets = [(None, f) for f in FUNCS]
        for m in self.lp_modules:
            obj = self.system.kernel.kallsyms.objects[m]
            targets += [(m, s.name) for s in obj.symbols]
        target = data.draw(st.sampled_from(targets))
        kw = {}
        if kind == "kprobe_override":
            kind, kw = "kprobe", {"override": -1}
        elif kind == "kprobe_body":
            kind, kw = "kprobe", {"offset": 8}
        elif kind == "fmod_ret":
            kw = {"ret": -13}
        elif kind == "fmod_ret_pass":
            kind = "fmod_ret"
        with contextlib.suppress(AttachError):  # refusals are the rules' business
            self.system.bpf.attach(LinkKind(kind), [target], **kw)

    @precondition(lambda self: self.system.bpf.links)
    @rule(data=st.data())
    def detach(self, data):
        name = data.draw(st.sampled_from(sorted(self.system.bpf.links)))
        self.system.bpf.detach(self.system.bpf.links[name])

    @rule(func=st.sampled_from(FUNCS))
    def call(self, func):
        self.step(f"call {func}")

    @invariant()
    def active_attachments_fire_silent_ones_do_not(self):
        if not hasattr(self, "system") or self.system.klp.transition_patch is not None:
            return
        kernel, klp = self.system.kernel, self.system.klp
        for h in attachment_health(self.system):
            link = h.link
            if h.state == "gone":
                continue
            entries = [e for e in (entry_for(klp, t) for t in link.targets) if e is not None]
            if not entries:
                assert h.state == "silent", (h, "nothing reaches it")
                continue
            before = link.hits
            for entry in entries:
                kernel.invoke(kernel.sched.current, entry, [])
            fired = link.hits > before
            assert fired == (h.state == "active"), (h, fired)


class AttachmentMachineReplaceSet(AttachmentMachine):
    profile = "replace-set"


TestAttachments71 = AttachmentMachine.TestCase
TestAttachments71.settings = SETTINGS
TestAttachmentsReplaceSet = AttachmentMachineReplaceSet.TestCase
TestAttachmentsReplaceSet.settings = SETTINGS
