"""Simulator-only verbs: things a script cannot do on a real machine
without a helper program, such as putting a task to sleep inside a given
kernel function. Scripts that use them run only in klpsim.

``spawn_task COMM [--kthread] [--busy FUNC]``
    Fork a task; print its pid. Pids are deterministic: the first task a
    script spawns is 1001, the next 1002, and so on, so a script writes
    them as numbers. ``--busy FUNC``: a user task that runs on a CPU and
    calls FUNC over and over (enters the kernel, returns to user mode), like
    test_klp-call_getpid.
``sleep_task PID FUNC [FUNC...]``
    The task calls each FUNC in turn and blocks in the innermost one. The
    calls go through ftrace, so a patched function leaves the code that
    actually runs on the stack.
``wake_task PID``
    The task returns from the functions ``sleep_task`` entered.
``kill PID``
    The task exits.

``call``, ``bpf_attach``, ``bpf_detach`` and ``bpf_attachments`` are in
bpfverbs.py.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from klpsim.kernel.module import is_c_identifier
from klpsim.kernel.symbols import Symbol
from klpsim.kernel.tasks import Task
from klpsim.scenario.helpers import die
from klpsim.scenario.parser import PID_HINT
from klpsim.scenario.verbs import REGISTRY, Arg, Opt

__all__ = ["PID", "FUNC", "function", "task"]

FAMILY = "simulator"
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


def _pid_error(word: str) -> str | None:
    if word.isascii() and word.isdigit():
        return None
    return f"'{word}' is not a pid: {PID_HINT}"


def _func_error(word: str) -> str | None:
    module, _, name = word.rpartition(":")
    ok = (not module or is_c_identifier(module)) and name and set(name) <= _NAME_CHARS
    return None if ok else f"'{word}' is not FUNC or MODULE:FUNC"


PID = Arg("PID", check=_pid_error)
"""A task, by the pid spawn_task printed."""
FUNC = Arg("FUNC", check=_func_error)
"""A function: ``func`` (vmlinux first, then modules in load order) or ``module:func``."""


def sim_verb(
    name: str, *args: Arg, **kw: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a simulator-only verb."""
    return REGISTRY.verb(name, FAMILY, *args, **kw)


@dataclass
class SimState:
    """Tasks put to sleep by sleep_task: pid -> stack depth before."""

    sleepers: dict[int, int] = field(default_factory=dict)


def task(rt, pid: str) -> Task:
    """The task with pid *pid* (checked to be a number); dies if there is none."""
    found = rt.kernel.sched.tasks.get(int(pid))
    if found is None:
        die(rt, f"no such task: {pid}")
    return found


def function(rt, name: str) -> Symbol:
    """The function *name* (``func`` or ``module:func``); dies if there is none."""
    objname, _, fname = name.rpartition(":")
    if objname:
        obj = rt.kernel.kallsyms.objects.get(objname)
        sym = obj.lookup(fname) if obj else None
    else:
        sym = rt.kernel.kallsyms.lookup_name(fname)
    if sym is None:
        die(rt, f"no such function: {name}")
    return sym


@sim_verb("spawn_task", Arg("COMM"), opts=(Opt("--kthread"), Opt("--busy", FUNC)))
def spawn_task(rt, comm: str, *opts: str) -> None:
    kernel = rt.kernel
    kthread = "--kthread" in opts
    busy = function(rt, opts[opts.index("--busy") + 1]) if "--busy" in opts else None
    new = kernel.spawn(comm, kthread=kthread)
    if busy is not None:
        new.loop = lambda t, f=busy: kernel.call(t, f, [])
        new.cpu = len(kernel.sched._busy) % kernel.sched.nr_cpus
        kernel.sched.set_running(new, True)
    rt.stdout(f"{new.pid}\n")


@sim_verb("sleep_task", PID, Arg("FUNC", check=_func_error, optional=True, repeat=True))
def sleep_task(rt, pid: str, *funcs: str) -> None:
    t = task(rt, pid)
    sleepers = rt.state(SimState).sleepers
    sleepers[t.pid] = sleepers.get(t.pid, len(t.stack))
    for name in funcs:
        rt.kernel.sleep_in(t, function(rt, name))


@sim_verb("wake_task", PID)
def wake_task(rt, pid: str) -> None:
    t = task(rt, pid)
    depth = rt.state(SimState).sleepers.pop(t.pid, len(t.stack))
    del t.stack[depth:]


@sim_verb("kill", PID)
def kill(rt, pid: str) -> None:
    rt.kernel.exit_task(task(rt, pid))
