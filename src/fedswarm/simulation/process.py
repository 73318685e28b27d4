"""The process backend: participants run in local worker processes.

Each worker receives the (picklable) client factory once, when it starts, and builds its
participants itself, so a :class:`~fedswarm.run.participants.ConfiguredClients` loads the
dataset in the worker and client data never leaves it. Each worker is a one-process pool,
so that the :class:`~fedswarm.simulation.routing.StickyRouter` can send a participant's
later exchanges of a round to the worker that holds its session.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from fedswarm.client import Sessions
from fedswarm.messages import ClientId
from fedswarm.simulation.backends import ClientFactory, Job, JobResult, check_picklable, run_job
from fedswarm.simulation.routing import StickyRouter

__all__ = ["ProcessBackend"]

_WORKER_FACTORY: ClientFactory | None = None
_WORKER_SESSIONS = Sessions()  # the in-round state of the participants this worker runs


def _init_worker(
    make_client: ClientFactory, warm_up: ClientId | None, tf32: bool | None = None
) -> None:
    global _WORKER_FACTORY  # one factory per worker process, set once at start-up
    _WORKER_FACTORY = make_client
    from fedswarm.pytorch.settings import worker_torch_settings

    worker_torch_settings(tf32)
    if warm_up is not None:
        make_client(warm_up)  # loads the data and builds the learner, once per worker


def _worker_jobs(jobs: list[Job]) -> list[JobResult]:
    assert _WORKER_FACTORY is not None, "worker started without a client factory"
    return [run_job(_WORKER_FACTORY, job, _WORKER_SESSIONS) for job in jobs]


def _ready() -> bool:
    return True


def _done(futures: Collection[Future[list[JobResult]]]) -> Collection[Future[list[JobResult]]]:
    return wait(futures, return_when=FIRST_COMPLETED).done


class ProcessBackend:
    """``workers`` processes, each building participants with its own copy of the
    (picklable) client factory, so datasets are loaded in the workers, not shipped.
    ``tf32``: for workers that train on a GPU, its float32 math (None: CPU workers)."""

    def __init__(self, workers: int = 2, tf32: bool | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.tf32 = tf32
        self._pools: list[ProcessPoolExecutor] = []
        self._factory: ClientFactory | None = None
        self._router: StickyRouter[Future[list[JobResult]]] | None = None

    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        """Start every worker and wait until each has run its initializer (which builds
        ``warm_up``)."""
        for future in [pool.submit(_ready) for pool in self._pools_for(make_client, warm_up)]:
            future.result()

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        self._pools_for(make_client)
        assert self._router is not None
        return self._router.run(jobs)

    def _pools_for(
        self, make_client: ClientFactory, warm_up: ClientId | None = None
    ) -> list[ProcessPoolExecutor]:
        if self._pools and self._factory is make_client:
            return self._pools
        self.close()
        check_picklable(make_client)
        ctx = multiprocessing.get_context("forkserver")  # no forked torch thread pools
        self._pools = [
            ProcessPoolExecutor(
                1,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(make_client, warm_up, self.tf32),
            )
            for _ in range(self.workers)
        ]
        pools = self._pools
        self._router = StickyRouter(
            self.workers,
            submit=lambda w, batch: pools[w].submit(_worker_jobs, batch),
            wait=_done,
            fetch=lambda future: future.result(),
        )
        self._factory = make_client
        return self._pools

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(cancel_futures=True)
        self._pools, self._router = [], None
