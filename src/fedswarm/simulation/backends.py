"""Backends: how a batch of participant jobs is executed in simulation.

A backend runs jobs (a participant, an instruction, its memory) and returns, per job,
the reply and new memory or the exception it raised. It never decides what a failure
means: the transport does (re-raise in debug mode, or count it as a drop-out). All
backends give the same results for the same jobs; they differ in where the work runs:

- ``SequentialBackend``: one job after another in this process (the debug backend).
- ``VectorizedBackend``: all fit jobs of a round as one ``vmap`` computation.
- ``ProcessBackend`` (:mod:`.process`): worker processes, for models too big to vectorise.
- ``RayBackend`` (:mod:`.ray_backend`): Ray actors, on this machine or a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fedswarm.client import ClientApp, LocalFitHandler, Sessions
from fedswarm.learner import BatchLearner
from fedswarm.messages import ClientId, ClientMemory, FitIns, Instruction, Reply
from fedswarm.training import LocalTraining

__all__ = [
    "Backend",
    "ClientFactory",
    "Job",
    "JobResult",
    "SequentialBackend",
    "VectorizedBackend",
    "check_picklable",
    "run_job",
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
    session_open: bool = False  # state left for a later exchange: route it here again


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


def run_job(make_client: ClientFactory, job: Job, sessions: Sessions) -> JobResult:
    """``job`` run by its participant, with the participant's session of this round."""
    session = sessions.get(job.client_id, job.ins.round)
    try:
        reply, memory = make_client(job.client_id).handle(job.ins, job.memory, session)
    except Exception as exc:
        return JobResult(job.client_id, None, job.memory, exc, session.is_open)
    return JobResult(job.client_id, reply, memory, None, session.is_open)


@dataclass(frozen=True)
class SequentialBackend:
    sessions: Sessions = field(default_factory=Sessions)  # participants' in-round state

    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        pass  # no workers: participants are built in this process, as they are needed

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        return [run_job(make_client, job, self.sessions) for job in jobs]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class VectorizedBackend:
    """Trains every fit job of a batch at once with the participants' shared
    :class:`~fedswarm.learner.BatchLearner` (e.g. ``VectorizedTorchLearner``); evaluation
    jobs, and fit jobs without a shared batch learner, run one by one."""

    sessions: Sessions = field(default_factory=Sessions)  # participants' in-round state

    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        pass  # no workers

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        results: dict[int, JobResult] = {}
        groups: dict[tuple[int, int, LocalTraining], list[tuple[int, Job, ClientApp]]] = {}
        for i, job in enumerate(jobs):
            app = make_client(job.client_id) if isinstance(job.ins, FitIns) else None
            if app is None or not _batchable(app):
                results[i] = run_job(make_client, job, self.sessions)
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


def _batchable(app: ClientApp) -> bool:
    """Whether ``app`` fits by plain local training (the built-in handler, which declares
    it) with a learner that trains many participants at once."""
    return isinstance(app.handlers.get(FitIns), LocalFitHandler) and isinstance(
        app.learner, BatchLearner
    )


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


def check_picklable(make_client: ClientFactory) -> None:
    import pickle

    try:
        pickle.dumps(make_client)
    except Exception as exc:
        raise TypeError(
            "the process and ray backends run participants in other processes, so the client "
            f"factory must be picklable (a module-level class or function, not a lambda): {exc}"
        ) from None
