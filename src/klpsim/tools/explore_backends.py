"""Where the explorer's workers run: local processes (``--jobs``) or a Ray
cluster (``--ray``), on the pools of tools/workers.py.

Both keep one :class:`~klpsim.tools.explore.Worker` per partition alive for
the whole search (its visited set is the partition's share of the state
space) and make one call per BFS level: the candidates it owns in, the next
level's candidates by owner out. docs/scale.md explains the partitioning.
"""

from __future__ import annotations

import importlib
from typing import Any

from klpsim.tools.explore import Bounds, Candidate, LevelStats, Worker, owner, route
from klpsim.tools.workers import ProcessPool, RayPool, RayUnavailable, WorkerFailed

__all__ = ["ProcessBackend", "RayBackend", "RayUnavailable", "WorkerFailed"]


class WorkerFactory:
    """Builds worker *index* of *jobs* (pickles by reference, for Ray)."""

    def __init__(self, b: Bounds, cls: type[Worker] = Worker):
        self.b = b
        self.cls = cls

    def __call__(self, index: int, jobs: int) -> Worker:
        return self.cls(self.b, index, jobs)


def _split(candidates: list[Candidate], jobs: int) -> list[list[Candidate]]:
    return [[c for c in candidates if owner(c[0], jobs) == w] for w in range(jobs)]


class ProcessBackend:
    """*jobs* worker processes; the coordinator passes the candidates along."""

    def __init__(self, b: Bounds, jobs: int):
        self.jobs = jobs
        self.pool = ProcessPool(WorkerFactory(b), jobs)
        self.incoming: list[list[Candidate]] = [[] for _ in range(jobs)]

    def seed(self, candidates: list[Candidate]) -> None:
        self.incoming = _split(candidates, self.jobs)

    def step(self, expand: bool) -> tuple[list[LevelStats], int]:
        outcomes = self.pool.call("step", [(cands, expand) for cands in self.incoming])
        self.incoming = route(self.jobs, (buckets for _, buckets in outcomes))
        return [stats for stats, _ in outcomes], sum(map(len, self.incoming))

    def close(self) -> None:
        self.pool.close()


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


class RayBackend:
    """*jobs* Ray actors (tools/workers.RayPool: ``local`` or an address)."""

    def __init__(self, b: Bounds, jobs: int, address: str):
        self.jobs = jobs
        self.pool = RayPool(WorkerFactory(b, RayWorker), jobs, address)
        self.parts: list[list[Any]] = [[] for _ in range(jobs)]
        """Per owner, references to the parts of its next level in the object store."""

    def seed(self, candidates: list[Candidate]) -> None:
        self.parts = [[self.pool.put(cands)] for cands in _split(candidates, self.jobs)]

    def step(self, expand: bool) -> tuple[list[LevelStats], int]:
        results = self.pool.call("step_refs", [(p, expand) for p in self.parts])
        self.parts = [[refs[w] for _, refs, _ in results] for w in range(self.jobs)]
        return [stats for stats, _, _ in results], sum(n for _, _, n in results)

    def close(self) -> None:
        self.pool.close()
