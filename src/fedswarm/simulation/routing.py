"""Which worker runs which participant's jobs, for backends with several workers.

A participant that left state in its session (a multi-step protocol between two of its
exchanges: secure-aggregation keys, split-learning activations) must get its later jobs of
that round in the same worker, where the session lives. Every other job goes wherever a
worker is free, in chunks (one pickled message per chunk, not per job), so one-exchange
rounds keep their load balancing. Written by hand because neither concurrent.futures nor
Ray's ActorPool can send a task to a chosen worker and balance the rest at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fedswarm.messages import ClientId
from fedswarm.simulation.backends import Job, JobResult

__all__ = ["StickyRouter"]

H = TypeVar("H")  # a handle of work submitted to a worker (a future, a Ray object ref)


@dataclass(eq=False)
class StickyRouter(Generic[H]):
    """Routes jobs over ``workers`` workers; ``submit(worker, jobs)`` starts a batch,
    ``wait(handles)`` returns those done (at least one), ``fetch(handle)`` its results."""

    workers: int
    submit: Callable[[int, list[Job]], H]
    wait: Callable[[Collection[H]], Collection[H]]
    fetch: Callable[[H], list[JobResult]]
    _open: dict[ClientId, tuple[int, int]] = field(default_factory=dict)  # -> (round, worker)

    def run(self, jobs: Sequence[Job]) -> list[JobResult]:
        fixed: list[list[int]] = [[] for _ in range(self.workers)]
        free: list[int] = []
        for k, job in enumerate(jobs):
            where = self._open.get(job.client_id)
            if where is not None and where[0] == job.ins.round:
                fixed[where[1]].append(k)
            else:
                free.append(k)
        size = max(1, len(free) // (4 * self.workers))
        chunks = deque(free[i : i + size] for i in range(0, len(free), size))
        queues = [deque([batch]) if batch else deque() for batch in fixed]
        return self._drain(jobs, queues, chunks)

    def _drain(
        self, jobs: Sequence[Job], queues: list[deque[list[int]]], chunks: deque[list[int]]
    ) -> list[JobResult]:
        results: dict[int, JobResult] = {}
        running: dict[H, tuple[int, list[int]]] = {}

        def feed(worker: int) -> None:
            source = queues[worker] or chunks
            if source:
                batch = source.popleft()
                running[self.submit(worker, [jobs[k] for k in batch])] = (worker, batch)

        for worker in range(self.workers):
            feed(worker)
        while running:
            for handle in self.wait(list(running)):
                worker, batch = running.pop(handle)
                for k, result in zip(batch, self.fetch(handle), strict=True):
                    results[k] = result
                    self._note(worker, jobs[k], result)
                feed(worker)
        return [results[k] for k in range(len(jobs))]

    def _note(self, worker: int, job: Job, result: JobResult) -> None:
        if result.session_open:
            self._open[job.client_id] = (job.ins.round, worker)
        else:
            self._open.pop(job.client_id, None)
