"""In-process transport: the participants are simulated by a backend on this machine (or
a cluster the backend reaches).

It keeps each participant's memory between rounds, as a participant's own disk would, and
builds participants on demand with a factory, so only the sampled ones exist at any
time. How their jobs run (one by one, vectorised, in worker processes) is the
:class:`~fedswarm.simulation.backends.Backend`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fedswarm.client import ClientApp
from fedswarm.messages import ClientId, ClientMemory, Failure, FitIns, Outcome, Stage
from fedswarm.simulation.backends import Backend, Job, JobResult, SequentialBackend
from fedswarm.transport.base import ClientError, Request

__all__ = ["InMemoryTransport"]


@dataclass
class InMemoryTransport:
    """``fail_fast`` re-raises a participant's exception as :class:`ClientError` naming
    stage, participant and round; otherwise it becomes a :class:`Failure` and the round
    goes on without that participant."""

    client_ids: Sequence[ClientId]
    make_client: Callable[[ClientId], ClientApp]
    fail_fast: bool = True
    backend: Backend = field(default_factory=SequentialBackend)
    # Participant-side storage (their "disks"): the only mutable state, owned here.
    memories: dict[ClientId, ClientMemory] = field(default_factory=dict)

    def available(self) -> Sequence[ClientId]:
        return self.client_ids

    def exchange(self, requests: Sequence[Request], *, timeout: float | None) -> list[Outcome]:
        # timeout: simulated participants cannot be abandoned midway; deadlines apply to
        # transports whose participants run elsewhere (and to simulated device speeds).
        jobs = [Job(cid, ins, self.memories.get(cid, {})) for cid, ins in requests]
        results = self.backend.run(self.make_client, jobs)
        return [self._outcome(job, res) for job, res in zip(jobs, results, strict=True)]

    def _outcome(self, job: Job, res: JobResult) -> Outcome:
        stage = Stage.FIT if isinstance(job.ins, FitIns) else Stage.EVALUATE
        if res.error is not None:
            if self.fail_fast:
                raise ClientError(stage, job.client_id, job.ins.round, res.error) from res.error
            reason = f"{type(res.error).__name__}: {res.error}"
            return Failure(job.client_id, job.ins.round, stage, reason)
        assert res.reply is not None
        self.memories[job.client_id] = res.memory
        return res.reply

    def close(self) -> None:
        self.backend.close()
