"""Simulator-only verbs: things a script cannot do on a real machine
without a helper program, such as putting a task to sleep inside a given
kernel function. Scripts that use them run only in klpsim.

``spawn_task COMM [--kthread] [--busy FUNC]``
    Fork a task; print its pid. ``--busy FUNC``: a user task that runs on a
    CPU and calls FUNC over and over (enters the kernel, returns to user
    mode), like test_klp-call_getpid.
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

from klpsim.kernel.tasks import Task

__all__ = ["SIM_VERBS"]


def _task(rt, pid: str) -> Task:
    from klpsim.scenario.helpers import die

    try:
        task = rt.kernel.sched.tasks.get(int(pid))
    except ValueError:
        task = None
    if task is None:
        die(rt, f"no such task: {pid}")
    return task


def _function(rt, name: str):
    from klpsim.scenario.helpers import die

    objname, _, fname = name.rpartition(":")
    if objname:
        obj = rt.kernel.kallsyms.objects.get(objname)
        sym = obj.lookup(fname) if obj else None
    else:
        sym = rt.kernel.kallsyms.lookup_name(fname)
    if sym is None:
        die(rt, f"no such function: {name}")
    return sym


def spawn_task(rt, comm: str, *opts: str) -> None:
    kernel = rt.kernel
    kthread = "--kthread" in opts
    busy = None
    if "--busy" in opts:
        i = opts.index("--busy")
        if i + 1 >= len(opts):
            from klpsim.scenario.helpers import die

            die(rt, "--busy needs a function")
        busy = _function(rt, opts[i + 1])
    task = kernel.spawn(comm, kthread=kthread)
    if busy is not None:
        task.loop = lambda t, f=busy: kernel.call(t, f, [])
        task.cpu = len(kernel.sched._busy) % kernel.sched.nr_cpus
        kernel.sched.set_running(task, True)
    rt.stdout(f"{task.pid}\n")


def sleep_task(rt, pid: str, *funcs: str) -> None:
    task = _task(rt, pid)
    depth = len(task.stack)
    rt.sleepers[task.pid] = rt.sleepers.get(task.pid, depth)
    for name in funcs:
        rt.kernel.sleep_in(task, _function(rt, name))


def wake_task(rt, pid: str) -> None:
    task = _task(rt, pid)
    depth = rt.sleepers.pop(task.pid, len(task.stack))
    del task.stack[depth:]


def kill(rt, pid: str) -> None:
    task = _task(rt, pid)
    rt.kernel.exit_task(task)


SIM_VERBS: dict[str, Callable[..., None]] = {
    "spawn_task": spawn_task,
    "sleep_task": sleep_task,
    "wake_task": wake_task,
    "kill": kill,
}
