"""Tasks, CPUs and the scheduler's switch points.

A task has a pid, a comm and an abstract kernel stack: the list of
functions it is inside, outermost first. A task may sleep inside a
function (its stack stays put) or run on a CPU (task_curr()). User tasks
with a ``loop`` run it at every scheduling point: they enter the kernel,
call something and return to user mode.

The hooks are the places where the real kernel calls into livepatch:
exit_to_user_mode (klp_update_patch_state), the idle loop, __schedule
(klp_sched_try_switch) and copy_process (klp_copy_process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klpsim.kernel.symbols import Symbol

__all__ = ["Task", "Scheduler", "PF_KTHREAD", "PF_IDLE"]

PF_IDLE = 0x00000002
PF_KTHREAD = 0x00200000


class Task:
    """A ``struct task_struct``, reduced to what livepatch looks at."""

    __slots__ = (
        "pid",
        "comm",
        "flags",
        "cpu",
        "stack",
        "on_cpu",
        "patch_state",
        "patch_pending",
        "loop",
        "freezable",
        "reliable",
        "signal_pending",
        "woken",
    )

    def __init__(
        self, pid: int, comm: str, flags: int = 0, cpu: int = 0, stack: Iterable[Symbol] = ()
    ):
        self.pid = pid
        self.comm = comm
        self.flags = flags
        self.cpu = cpu
        self.stack: list[Symbol] = list(stack)
        self.on_cpu = False
        self.patch_state = -1  # KLP_TRANSITION_IDLE, as init_task
        self.patch_pending = False  # TIF_PATCH_PENDING
        self.loop: Callable[[Task], object] | None = None  # its result is ignored
        self.freezable = False  # sleeps in TASK_FREEZABLE (kthread main loops)
        self.reliable = True  # a reliable stack trace can be taken
        self.signal_pending = False  # TIF_NOTIFY_SIGNAL
        self.woken = False

    @property
    def is_kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def is_idle(self) -> bool:
        return bool(self.flags & PF_IDLE)

    def __repr__(self) -> str:
        return f"<task {self.comm}:{self.pid}>"


class Scheduler:
    """The task list, per-CPU idle tasks and the switch points."""

    def __init__(self, nr_cpus: int) -> None:
        self.nr_cpus = nr_cpus
        self.tasks: dict[int, Task] = {}  # for_each_process_thread() order
        self.idle = [Task(0, f"swapper/{cpu}", PF_IDLE | PF_KTHREAD, cpu) for cpu in range(nr_cpus)]
        self.cpu_online = [True] * nr_cpus
        # Boot runs as init_task, swapper/0; the kernel's shell takes over.
        self.current: Task = self.idle[0]
        self.next_pid = 1
        self.exit_to_user_mode: list[Callable[[Task], None]] = []
        self.idle_hooks: list[Callable[[Task], None]] = []
        self.schedule_hooks: list[Callable[[Task], None]] = []
        self.fork_hooks: list[Callable[[Task, Task], None]] = []
        self.cond_resched_hooks: list[Callable[[Task], None]] = []
        self._idle_wakeups: set[int] = set()
        self._busy: list[Task] = []  # running user tasks with a loop
        self._woken: list[Task] = []

    def spawn(
        self,
        comm: str,
        kthread: bool = False,
        stack: Iterable[Symbol] = (),
        parent: Task | None = None,
        pid: int | None = None,
    ) -> Task:
        """copy_process(): a new task; the fork hooks see (parent, child)."""
        if pid is None:
            pid = self.next_pid
        self.next_pid = max(self.next_pid, pid + 1)
        task = Task(pid, comm, PF_KTHREAD if kthread else 0, stack=stack)
        parent = parent or self.current
        for hook in self.fork_hooks:
            hook(parent, task)
        self.tasks[pid] = task
        return task

    def exit(self, task: Task) -> None:
        self.tasks.pop(task.pid, None)
        self.set_running(task, False)

    def set_running(self, task: Task, running: bool) -> None:
        """Put a task on a CPU (busy) or take it off."""
        task.on_cpu = running
        if running and task.loop is not None and task not in self._busy:
            self._busy.append(task)
        elif not running and task in self._busy:
            self._busy.remove(task)

    def task_curr(self, task: Task) -> bool:
        """Is *task* running on a CPU right now?"""
        if task.is_idle:
            # An online CPU with nothing else on it is running its idle task.
            if not self.cpu_online[task.cpu]:
                return False
            return not any(t.on_cpu and t.cpu == task.cpu for t in self._cpu_users())
        return task.on_cpu

    def _cpu_users(self) -> Iterator[Task]:
        yield self.current
        yield from self._busy

    def wake_up_if_idle(self, cpu: int) -> None:
        """Make an idle CPU go once through its idle loop."""
        self._idle_wakeups.add(cpu)

    def wake_up_state(self, task: Task) -> None:
        """Wake a sleeping task; it passes __schedule() at the next tick."""
        if not task.woken:
            task.woken = True
            self._woken.append(task)

    def set_notify_signal(self, task: Task) -> None:
        """A fake signal: the task leaves the kernel at the next tick."""
        task.signal_pending = True
        self.wake_up_state(task)

    def idle_wakeups(self) -> set[int]:
        """The CPUs whose idle task goes through its loop at the next tick."""
        return self._idle_wakeups

    def idle_while_time_passes(self) -> bool:
        """Would a tick run nothing: no task on a CPU, none woken, no idle CPU
        to kick?"""
        return not (self._busy or self._woken or self._idle_wakeups)

    def tick(self) -> None:
        """Run what the CPUs would run while time passes."""
        if self._idle_wakeups:
            for cpu in sorted(self._idle_wakeups):
                idle = self.idle[cpu]
                for hook in self.idle_hooks:
                    hook(idle)
            self._idle_wakeups.clear()
        if self._woken:
            woken, self._woken = self._woken, []
            for task in woken:
                task.woken = False
                with self._running(task):
                    for hook in self.schedule_hooks:
                        hook(task)
                    if task.signal_pending and not task.is_kthread:
                        # The signal interrupts the sleep; the task passes
                        # through exit_to_user_mode and restarts the call.
                        task.signal_pending = False
                        self.return_to_user(task)
        for task in list(self._busy):
            loop = task.loop
            assert loop is not None  # set_running() makes only tasks with a loop busy
            with self._running(task):
                loop(task)
                if task.is_kthread:
                    # A CPU-bound kthread never returns to user space; it
                    # calls cond_resched() in its loop.
                    for hook in self.cond_resched_hooks:
                        hook(task)
                else:
                    self.return_to_user(task)

    @contextmanager
    def _running(self, task: Task) -> Iterator[None]:
        """Run code as *task*, the current task of its CPU."""
        prev, self.current = self.current, task
        try:
            yield
        finally:
            self.current = prev

    def return_to_user(self, task: Task) -> None:
        for hook in self.exit_to_user_mode:
            hook(task)

    def all_tasks(self) -> Iterator[Task]:
        """Every thread, then every CPU's idle task."""
        yield from self.tasks.values()
        yield from self.idle
