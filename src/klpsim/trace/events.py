"""The BPF and error-injection types that trace/ hands upwards.

Link kinds and trampoline flags mirror the kernel's enums
(``enum bpf_attach_type``/``bpf_link_type`` as a loader names them,
``BPF_TRAMP_F_*``); the call-trace records say which program ran during
a call and what it did, as bpf_trace.c and fail_function.c would let a
test program observe it. trace/bpf.py and trace/error_inject.py emit the
records on their tracepoints; the ``call`` verb and the model's event log
read them.
"""

from enum import Enum, Flag, auto
from typing import NamedTuple

from klpsim.kernel.tracepoint import distinct

__all__ = [
    "LinkKind",
    "KPROBE_KINDS",
    "MULTI_KINDS",
    "TRAMP_KINDS",
    "EXIT_KINDS",
    "OVERRIDE_KINDS",
    "TrampolineFlag",
    "CallPhase",
    "ProgramRan",
    "FailFunctionInjected",
    "LinkAttached",
    "AttachRefused",
    "LinkDetached",
    "TraceEvent",
]


class LinkKind(Enum):
    """What a program is attached as (libbpf's section names)."""

    KPROBE = "kprobe"
    KRETPROBE = "kretprobe"
    KPROBE_MULTI = "kprobe_multi"
    KRETPROBE_MULTI = "kretprobe_multi"
    FENTRY = "fentry"
    FEXIT = "fexit"
    FMOD_RET = "fmod_ret"

    def __str__(self) -> str:
        return self.value


KPROBE_KINDS = frozenset({LinkKind.KPROBE, LinkKind.KRETPROBE})
"""A trace_kprobe: one kprobe (or kretprobe) per link."""
MULTI_KINDS = frozenset({LinkKind.KPROBE_MULTI, LinkKind.KRETPROBE_MULTI})
"""An fprobe over several functions (BPF_LINK_TYPE_KPROBE_MULTI)."""
TRAMP_KINDS = frozenset({LinkKind.FENTRY, LinkKind.FEXIT, LinkKind.FMOD_RET})
"""A BPF trampoline program (BPF_LINK_TYPE_TRACING)."""
EXIT_KINDS = frozenset({LinkKind.KRETPROBE, LinkKind.KRETPROBE_MULTI, LinkKind.FEXIT})
"""Programs that run when the call returns."""
OVERRIDE_KINDS = frozenset({LinkKind.KPROBE, LinkKind.KPROBE_MULTI})
"""Programs that may call bpf_override_return()."""


class TrampolineFlag(Flag):
    """The ``BPF_TRAMP_F_*`` flags a trampoline was generated with, plus
    whether it shares its site with an IPMODIFY ops."""

    CALL_ORIG = auto()
    """BPF_TRAMP_F_CALL_ORIG: the trampoline calls the function (fexit, fmod_ret)."""
    SHARE_IPMODIFY = auto()
    """BPF_TRAMP_F_SHARE_IPMODIFY: an IPMODIFY ops (a livepatch) is on the site."""
    ORIG_STACK = auto()
    """BPF_TRAMP_F_ORIG_STACK: call whatever regs->ip says, not orig + 5."""


class CallPhase(Enum):
    """When during a call a program ran."""

    ENTRY = "entry"
    """At the function's entry (ftrace handlers, the trampoline before the call)."""
    BODY = "body"
    """A breakpoint inside the body that ran (a kprobe at FUNC+OFFSET)."""
    EXIT = "exit"
    """When the call returned (kretprobe, fexit, an fprobe exit handler)."""


@distinct
class ProgramRan(NamedTuple):
    """A BPF program ran; it reports the call as *func* (bpf_get_func_ip())."""

    link: str
    kind: LinkKind
    func: str
    phase: CallPhase
    override: int | None = None
    """bpf_override_return(ctx, override) was called."""
    returned: int | None = None
    """An fmod_ret program returned this."""
    saw_return: object = None
    """A return program saw this return value."""

    def __str__(self) -> str:
        text = f"{self.kind} {self.link} on {self.func}"
        if self.override is not None:
            return f"{text}: bpf_override_return({self.override})"
        if self.returned is not None:
            return f"{text}: returned {self.returned}"
        if self.phase is CallPhase.EXIT:
            return f"{text}: saw return {self.saw_return}"
        return text


@distinct
class FailFunctionInjected(NamedTuple):
    """fail_function's kprobe made *func* return *value* (should_fail() said so)."""

    func: str
    value: int

    def __str__(self) -> str:
        return f"fail_function on {self.func}: injected {self.value}"


@distinct
class LinkAttached(NamedTuple):
    """A program was loaded and attached."""

    link: str
    kind: LinkKind
    where: str
    """``func``, ``mod:func``, ``func+0x10`` or a comma-separated list."""


@distinct
class AttachRefused(NamedTuple):
    """The kernel refused to attach a program: *errno* (negative)."""

    kind: LinkKind
    funcs: tuple[str, ...]
    errno: int
    log: tuple[str, ...] = ()
    """What the verifier or the attach path said."""
    why: str = ""
    """The model's reason, where the kernel says nothing (for the notes)."""


@distinct
class LinkDetached(NamedTuple):
    """The link was closed."""

    link: str


TraceEvent = ProgramRan | FailFunctionInjected | LinkAttached | AttachRefused | LinkDetached
