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

from klpsim.tools.explore import Bounds, Candidate, LevelStats, Worker, owner, route

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

        self.incoming: list[list[Candidate]] = [[] for _ in range(jobs)]
        self.busy = False

    def seed(self, candidates: list[Candidate]) -> None:
        self.incoming = [[c for c in candidates if owner(c[0], self.jobs) == w]
                         for w in range(self.jobs)]  # fmt: skip

    def step(self, expand: bool) -> tuple[list[LevelStats], int]:
        self.busy = True
        for conn, cands in zip(self.conns, self.incoming, strict=True):
            conn.send((cands, expand))
        outcomes: list[Outcome] = []
        for i, conn in enumerate(self.conns):
            try:
                status, value = conn.recv()
            except EOFError:
                raise WorkerFailed(f"worker {i} died") from None
            if status != "ok":
                raise WorkerFailed(f"worker {i}: {value}")
            outcomes.append(value)
        self.busy = False
        self.incoming = route(self.jobs, (buckets for _, buckets in outcomes))
        return [stats for stats, _ in outcomes], sum(map(len, self.incoming))

    def close(self) -> None:
        """Stop the workers: at once if a level was cut short (Ctrl-C, the
        time limit), else when they have read the stop message."""
        for conn in self.conns:
            with contextlib.suppress(OSError):  # it died
                conn.send(None)
            conn.close()
        for proc in self.procs:
            proc.join(timeout=0 if self.busy else 5)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
                proc.join()


class RayWorker(Worker):
    """A Worker as a Ray actor: the candidates travel between actors through
    Ray's object store; the driver only passes their references along."""

    def step_refs(self, refs: list[Any], expand: bool) -> tuple[LevelStats, list[Any], int]:
        """step() on the parts at *refs*; the next level's buckets go back
        into the object store, one reference per owner."""
        ray: Any = importlib.import_module("ray")
        incoming = [cand for part in ray.get(refs) for cand in part]
        stats, buckets = self.step(incoming, expand)
        return stats, [ray.put(bucket) for bucket in buckets], sum(map(len, buckets))


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
        actor = ray.remote(num_cpus=1)(RayWorker)
        self.actors: list[Any] = [actor.remote(b, i, jobs) for i in range(jobs)]
        self.parts: list[list[Any]] = [[] for _ in range(jobs)]
        """Per owner, references to the parts of its next level in the object store."""

    def seed(self, candidates: list[Candidate]) -> None:
        self.parts = [[self.ray.put([c for c in candidates if owner(c[0], self.jobs) == w])]
                      for w in range(self.jobs)]  # fmt: skip

    def step(self, expand: bool) -> tuple[list[LevelStats], int]:
        """The candidates go from actor to actor through Ray's object store:
        the driver sees only their references and counts."""
        calls = [
            a.step_refs.remote(p, expand) for a, p in zip(self.actors, self.parts, strict=True)
        ]
        results = self.ray.get(calls)
        self.parts = [[refs[w] for _, refs, _ in results] for w in range(self.jobs)]
        return [stats for stats, _, _ in results], sum(n for _, _, n in results)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self._started:
            self.ray.shutdown()
