"""Backends: how a batch of participant jobs is executed in simulation.

A backend runs jobs (a participant, an instruction, its memory) and returns, per job,
the reply and new memory or the exception it raised. It never decides what a failure
means: the transport does (re-raise in debug mode, or count it as a drop-out). All
backends give the same results for the same jobs; they differ in where the work runs:

- ``SequentialBackend``: one job after another in this process (the debug backend).
- ``VectorizedBackend``: all fit jobs of a round as one ``vmap`` computation.
- ``ProcessBackend``: a local pool of worker processes, for models too big to vectorise.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from fedswarm.client import ClientApp
from fedswarm.learner import BatchLearner, LocalTraining
from fedswarm.messages import ClientId, ClientMemory, FitIns, Instruction, Reply

__all__ = [
    "Backend",
    "ClientFactory",
    "Job",
    "JobResult",
    "ProcessBackend",
    "SequentialBackend",
    "VectorizedBackend",
    "worker_torch_settings",
]

ClientFactory = Callable[[ClientId], ClientApp]


@dataclass(frozen=True, eq=False)
class Job:
    client_id: ClientId
    ins: Instruction
    memory: ClientMemory


@dataclass(frozen=True, eq=False)
class JobResult:
    """A reply and the participant's new memory, or the error it raised."""

    client_id: ClientId
    reply: Reply | None
    memory: ClientMemory
    error: BaseException | None = None


class Backend(Protocol):
    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        """Start the workers for ``make_client`` now, not in the first :meth:`run`; each
        builds participant ``warm_up`` once, so that its data and model are loaded too."""
        ...

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        """Execute ``jobs``; results in the order of ``jobs``."""
        ...

    def close(self) -> None:
        """Release workers; the backend may not be used afterwards."""
        ...


def run_job(make_client: ClientFactory, job: Job) -> JobResult:
    try:
        reply, memory = make_client(job.client_id).handle(job.ins, job.memory)
    except Exception as exc:
        return JobResult(job.client_id, None, job.memory, exc)
    return JobResult(job.client_id, reply, memory)


@dataclass(frozen=True)
class SequentialBackend:
    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        pass  # no workers: participants are built in this process, as they are needed

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        return [run_job(make_client, job) for job in jobs]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class VectorizedBackend:
    """Trains every fit job of a batch at once with the participants' shared
    :class:`~fedswarm.learner.BatchLearner` (e.g. ``VectorizedTorchLearner``); evaluation
    jobs, and fit jobs without a shared batch learner, run one by one."""

    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        pass  # no workers

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        results: dict[int, JobResult] = {}
        groups: dict[tuple[int, int, LocalTraining], list[tuple[int, Job, ClientApp]]] = {}
        for i, job in enumerate(jobs):
            app = make_client(job.client_id) if isinstance(job.ins, FitIns) else None
            if app is None or not isinstance(app.learner, BatchLearner):
                results[i] = run_job(make_client, job)
                continue
            assert isinstance(job.ins, FitIns)
            # Batched together: same learner, same global parameters, same local training
            # (participants may differ in their training, e.g. in simulated local epochs).
            key = (id(app.learner), id(job.ins.params), job.ins.training)
            groups.setdefault(key, []).append((i, job, app))
        for members in groups.values():
            for (i, _, _), result in zip(members, _fit_group(members), strict=True):
                results[i] = result
        return [results[i] for i in range(len(jobs))]

    def close(self) -> None:
        pass


def _fit_group(members: Sequence[tuple[int, Job, ClientApp]]) -> list[JobResult]:
    """One ``fit_many`` for participants sharing learner, parameters and training."""
    jobs = [job for _, job, _ in members]
    apps = [app for _, _, app in members]
    ins = [job.ins for job in jobs if isinstance(job.ins, FitIns)]
    learner = apps[0].learner
    assert isinstance(learner, BatchLearner)
    assert len(ins) == len(jobs)
    try:
        corrections = [a.prepare_fit(i, j.memory) for a, i, j in zip(apps, ins, jobs, strict=True)]
        fits = learner.fit_many(
            ins[0].params,
            [a.data.train for a in apps],
            ins[0].training,
            corrections,
            [i.seed for i in ins],
        )
        done = [
            a.complete_fit(i, j.memory, f) for a, i, j, f in zip(apps, ins, jobs, fits, strict=True)
        ]
    except Exception as exc:  # a batched step cannot be pinned on one participant
        return [JobResult(j.client_id, None, j.memory, exc) for j in jobs]
    return [
        JobResult(j.client_id, reply, memory) for j, (reply, memory) in zip(jobs, done, strict=True)
    ]


_WORKER_FACTORY: ClientFactory | None = None


def worker_torch_settings(tf32: bool | None = None) -> None:
    """Torch in a worker process (a pool's or a Ray actor's), for good: one intra-op
    thread, since the workers are the parallelism, and deterministic kernels, as the driver
    runs them (``experiment.torch_settings``). Switching determinism on imports
    ``torch._dynamo`` (about 2 s), which the first ``torch.optim`` optimiser would
    otherwise import inside the first round. ``tf32``: for workers that train on a GPU,
    its float32 math (``fedswarm.pytorch.device.set_cuda_math``); None: CPU workers."""
    import torch

    if tf32 is not None:
        from fedswarm.pytorch.device import set_cuda_math

        set_cuda_math(tf32)  # before the first CUDA matmul, which reads the cuBLAS setting
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


def _init_worker(
    make_client: ClientFactory, warm_up: ClientId | None, tf32: bool | None = None
) -> None:
    global _WORKER_FACTORY  # one factory per worker process, set once at start-up
    _WORKER_FACTORY = make_client
    worker_torch_settings(tf32)
    if warm_up is not None:
        make_client(warm_up)  # loads the data and builds the learner, once per worker


def _worker_job(job: Job) -> JobResult:
    assert _WORKER_FACTORY is not None, "worker started without a client factory"
    return run_job(_WORKER_FACTORY, job)


def _worker_pid(_: int) -> int:
    """A worker's process id, after a pause that lets the other workers take tasks too."""
    time.sleep(0.01)
    return os.getpid()


class ProcessBackend:
    """A pool of ``workers`` processes, each building participants with its own copy of the
    (picklable) client factory, so datasets are loaded in the workers, not shipped.
    ``tf32``: see :func:`worker_torch_settings` (None: the workers train on the CPU)."""

    def __init__(self, workers: int = 2, tf32: bool | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.tf32 = tf32
        self._pool: ProcessPoolExecutor | None = None
        self._factory: ClientFactory | None = None

    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        """Start every worker and wait until each has run its initializer (which builds
        ``warm_up``). Workers spawn on demand, one per task submitted while none is idle,
        and initialise before their first task: so ask until every worker has answered."""
        pool = self._pool_for(make_client, warm_up)
        answered: set[int] = set()
        while len(answered) < self.workers:
            answered.update(pool.map(_worker_pid, range(self.workers)))

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        pool = self._pool_for(make_client)
        return list(pool.map(_worker_job, jobs, chunksize=max(1, len(jobs) // (4 * self.workers))))

    def _pool_for(
        self, make_client: ClientFactory, warm_up: ClientId | None = None
    ) -> ProcessPoolExecutor:
        if self._pool is not None and self._factory is make_client:
            return self._pool
        self.close()
        _check_picklable(make_client)
        ctx = multiprocessing.get_context("forkserver")  # no forked torch thread pools
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(make_client, warm_up, self.tf32),
        )
        self._factory = make_client
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _check_picklable(make_client: ClientFactory) -> None:
    import pickle

    try:
        pickle.dumps(make_client)
    except Exception as exc:
        raise TypeError(
            "the process and ray backends run participants in other processes, so the client "
            f"factory must be picklable (a module-level class or function, not a lambda): {exc}"
        ) from None
