"""Pools of long-lived workers: in this process, in local processes, or on
a Ray cluster.

A pool holds J workers, worker *w* built by ``factory(w, J)`` (a class or a
module-level function: it must pickle by reference). ``call(method, args)``
runs ``worker.method(*args[w])`` on every worker at once and returns the
results in worker order; a worker keeps its state between calls. The
explorer runs one BFS level per call (tools/explore_backends.py).
``feed(method, tasks)`` hands the tasks out one at a time, each to the next
worker that is free, and yields ``(index, result)`` as each ends: work of
uneven size (a fleet plan's hosts) keeps every worker busy. Ray is imported
only by :class:`RayPool` (``pip install klpsim[ray]``).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

__all__ = ["LocalPool", "ProcessPool", "RayPool", "WorkerFailed", "RayUnavailable"]

Factory = Callable[[int, int], Any]


class WorkerFailed(RuntimeError):
    """A worker raised (its exception, as one line) or died."""


class LocalPool:
    """The workers in this process, called one after the other."""

    def __init__(self, factory: Factory, jobs: int):
        self.jobs = jobs
        self.workers = [factory(i, jobs) for i in range(jobs)]

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return [getattr(w, method)(*a) for w, a in zip(self.workers, args, strict=True)]

    def feed(self, method: str, tasks: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        for i, task in enumerate(tasks):
            yield i, getattr(self.workers[i % self.jobs], method)(*task)

    def close(self) -> None:
        pass


def _serve(factory: Factory, index: int, jobs: int, conn: Connection) -> None:
    """A worker process: one (method, args) per message, until None or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    worker = factory(index, jobs)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        method, args = message
        try:
            conn.send(("ok", getattr(worker, method)(*args)))
        except Exception as e:  # noqa: BLE001 (sent back: the caller reports it)
            conn.send(("error", f"{type(e).__name__}: {e}"))


class ProcessPool:
    """*jobs* worker processes forked from this one (multiprocessing, Linux's
    fork: the workers start with everything this process has loaded)."""

    def __init__(self, factory: Factory, jobs: int):
        self.jobs = jobs
        ctx = multiprocessing.get_context("fork")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.busy = False
        for i in range(jobs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(factory, i, jobs, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        self.busy = True
        for conn, a in zip(self.conns, args, strict=True):
            conn.send((method, a))
        out = [self._receive(conn) for conn in self.conns]
        self.busy = False
        return out

    def _receive(self, conn: Connection) -> Any:
        """The result a worker sent back, or WorkerFailed."""
        i = self.conns.index(conn)
        try:
            status, value = conn.recv()
        except EOFError:
            raise WorkerFailed(f"worker {i} died") from None
        if status != "ok":
            raise WorkerFailed(f"worker {i}: {value}")
        return value

    def feed(self, method: str, tasks: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        self.busy = True
        todo = iter(enumerate(tasks))
        running: dict[Connection, int] = {}

        def give(conn: Connection) -> None:
            task = next(todo, None)
            if task is not None:
                running[conn] = task[0]
                conn.send((method, task[1]))

        for conn in self.conns:
            give(conn)
        while running:
            for ready in wait(list(running)):
                conn = cast(Connection, ready)
                i = running.pop(conn)
                value = self._receive(conn)
                give(conn)
                yield i, value
        self.busy = False

    def close(self) -> None:
        """Stop the workers: at once if a call was cut short (Ctrl-C, a time
        limit), else when they have read the stop message."""
        for conn in self.conns:
            with contextlib.suppress(OSError):  # it died
                conn.send(None)
            conn.close()
        for proc in self.procs:
            proc.join(timeout=0 if self.busy else 5)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
                proc.join()


class RayUnavailable(RuntimeError):
    """No Ray installed, or a cluster that cannot be reached: one line."""


class RayPool:
    """*jobs* Ray actors, one CPU each. *address* ``local`` starts a Ray
    instance on this machine; anything else is a running cluster's address
    (``HOST:6379``, or ``ray://HOST:10001`` through Ray Client)."""

    def __init__(self, factory: Factory, jobs: int, address: str):
        try:
            self.ray: Any = importlib.import_module("ray")
        except ImportError:
            raise RayUnavailable("--ray needs Ray: pip install 'klpsim[ray]'") from None
        ray = self.ray
        self.jobs = jobs
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address == "local":
                kwargs["num_cpus"] = max(jobs, os.cpu_count() or 1)
            else:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except Exception as e:  # noqa: BLE001 (Ray raises many kinds)
                raise RayUnavailable(f"--ray {address}: {e}") from None
            self._started = True
        actor = ray.remote(num_cpus=1)(_RayActor)
        self.actors: list[Any] = [actor.remote(factory, i, jobs) for i in range(jobs)]

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        refs = [a.call.remote(method, *x) for a, x in zip(self.actors, args, strict=True)]
        try:
            out: list[Any] = self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:
            raise WorkerFailed(str(e).splitlines()[0]) from None
        return out

    def feed(self, method: str, tasks: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        todo = iter(enumerate(tasks))
        running: dict[Any, tuple[Any, int]] = {}

        def give(actor: Any) -> None:
            task = next(todo, None)
            if task is not None:
                running[actor.call.remote(method, *task[1])] = (actor, task[0])

        for actor in self.actors:
            give(actor)
        while running:
            (ref,), _ = self.ray.wait(list(running), num_returns=1)
            actor, i = running.pop(ref)
            try:
                value = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as e:
                raise WorkerFailed(str(e).splitlines()[0]) from None
            give(actor)
            yield i, value

    def put(self, value: object) -> Any:
        """*value* in the object store: a reference workers can ray.get()."""
        return self.ray.put(value)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self._started:
            self.ray.shutdown()


class _RayActor:
    """Holds one worker inside a Ray actor."""

    def __init__(self, factory: Factory, index: int, jobs: int):
        self.worker = factory(index, jobs)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.worker, method)(*args)
