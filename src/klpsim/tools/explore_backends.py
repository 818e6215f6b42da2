"""Where the explorer's workers run: local processes (``--jobs``) or a Ray
cluster (``--ray``).

Both keep one :class:`~klpsim.tools.explore.Worker` per partition alive for
the whole search (its visited set is the partition's share of the state
space) and take one call per BFS level: the candidates it owns in, the next
level's candidates by owner out. The coordinator (explore.explore()) routes
them. docs/scale.md explains the partitioning.

Ray is imported only here, and only for ``--ray``: ``pip install klpsim[ray]``.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from klpsim.tools.explore import Bounds, Candidate, LevelStats, Worker

__all__ = ["ProcessBackend", "RayBackend", "RayUnavailable"]

Outcome = tuple[LevelStats, list[list[Candidate]]]


def _serve(b: Bounds, index: int, jobs: int, conn: Connection) -> None:
    """A worker process: one level per message until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    worker = Worker(b, index, jobs)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:  # close()
            return
        incoming, expand = message
        try:
            conn.send(("ok", worker.step(incoming, expand)))
        except Exception as e:  # noqa: BLE001 (sent back: the coordinator reports it)
            conn.send(("error", f"{type(e).__name__}: {e}"))


class WorkerFailed(RuntimeError):
    """A worker process raised or died."""


class ProcessBackend:
    """*jobs* worker processes forked from this one (multiprocessing)."""

    def __init__(self, b: Bounds, jobs: int):
        self.jobs = jobs
        ctx = multiprocessing.get_context("fork")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(jobs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(b, i, jobs, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def step(self, incoming: list[list[Candidate]], expand: bool) -> list[Outcome]:
        for conn, cands in zip(self.conns, incoming, strict=True):
            conn.send((cands, expand))
        out = []
        for i, conn in enumerate(self.conns):
            try:
                status, value = conn.recv()
            except EOFError:
                raise WorkerFailed(f"worker {i} died") from None
            if status != "ok":
                raise WorkerFailed(f"worker {i}: {value}")
            out.append(value)
        return out

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):  # it died
                conn.send(None)
            conn.close()
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
                proc.join()


class RayUnavailable(RuntimeError):
    """``--ray`` without Ray installed, or a cluster that cannot be reached."""


class RayBackend:
    """*jobs* Ray actors, each a Worker. *address* ``local`` starts a Ray
    instance in this process' machine (ray.init()); anything else is the
    address of a running cluster (``ray://HOST:10001`` or ``HOST:6379``)."""

    def __init__(self, b: Bounds, jobs: int, address: str):
        try:
            ray: Any = importlib.import_module("ray")
        except ImportError:
            raise RayUnavailable("--ray needs Ray: pip install 'klpsim[ray]'") from None
        self.ray = ray
        self.jobs = jobs
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address != "local":
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = max(jobs, os.cpu_count() or 1)
            try:
                ray.init(**kwargs)
            except Exception as e:  # noqa: BLE001 (Ray raises many kinds)
                raise RayUnavailable(f"--ray {address}: {e}") from None
            self._started = True
        actor = ray.remote(num_cpus=1)(Worker)
        self.actors: list[Any] = [actor.remote(b, i, jobs) for i in range(jobs)]

    def step(self, incoming: list[list[Candidate]], expand: bool) -> list[Outcome]:
        refs = [
            a.step.remote(cands, expand) for a, cands in zip(self.actors, incoming, strict=True)
        ]
        outcomes: list[Outcome] = self.ray.get(refs)
        return outcomes

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self._started:
            self.ray.shutdown()
