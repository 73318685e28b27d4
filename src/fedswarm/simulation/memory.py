"""In-process transport: the participants are simulated by a backend on this machine (or
a cluster the backend reaches).

It keeps each participant's memory between rounds, as a participant's own disk would, and
builds participants on demand with a factory, so only the sampled ones exist at any
time. How their jobs run (one by one, vectorised, in worker processes) is the
:class:`~fedswarm.simulation.backends.Backend`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from fedswarm.client import ClientApp
from fedswarm.kinds import BUILTIN_KINDS, MessageKinds
from fedswarm.messages import (
    ClientId,
    ClientMemory,
    Failure,
    FailureKind,
    FitIns,
    FitRes,
    Outcome,
)
from fedswarm.simulation.backends import Backend, Job, JobResult, SequentialBackend
from fedswarm.simulation.devices import DeviceModel
from fedswarm.transport.base import ClientError, Fold, Request

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
    devices: DeviceModel | None = None  # simulated speeds, drop-outs and local work
    kinds: MessageKinds = BUILTIN_KINDS  # the message kinds of the protocols run over it
    # Participant-side storage (their "disks"): the only mutable state, owned here.
    memories: dict[ClientId, ClientMemory] = field(default_factory=dict)

    def available(self) -> Sequence[ClientId]:
        return self.client_ids

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        """Run the requests; ``timeout`` is the round deadline in simulated device seconds
        (it applies when a :class:`DeviceModel` gives the devices speeds)."""
        outcomes: dict[int, Outcome] = {}
        jobs: list[tuple[int, Job]] = []
        for i, (cid, ins) in enumerate(requests):
            stage = self.kinds.stage_of(ins)  # an unknown kind fails here, naming it
            if self.devices and self.devices.drops_out(ins.round, cid):
                why = "dropped out (simulated)"
                outcomes[i] = Failure(cid, ins.round, stage, FailureKind.DROPPED, why)
                continue
            if self.devices and isinstance(ins, FitIns):
                ins = replace(ins, training=self.devices.training(ins.round, cid, ins.training))
            jobs.append((i, Job(cid, ins, self.memories.get(cid, {}))))
        results = self.backend.run(self.make_client, [job for _, job in jobs])
        for (i, job), res in zip(jobs, results, strict=True):
            outcomes[i] = self._outcome(job, res, timeout)
            if fold is not None:
                outcomes[i] = fold(outcomes[i])
        return [outcomes[i] for i in range(len(requests))]

    def _outcome(self, job: Job, res: JobResult, deadline: float | None) -> Outcome:
        stage = self.kinds.stage_of(job.ins)
        if res.error is not None:
            if self.fail_fast:
                raise ClientError(stage, job.client_id, job.ins.round, res.error) from res.error
            reason = f"{type(res.error).__name__}: {res.error}"
            return Failure(job.client_id, job.ins.round, stage, FailureKind.RAISED, reason)
        assert res.reply is not None
        if self.devices and deadline is not None and isinstance(res.reply, FitRes):
            took = self.devices.seconds(job.client_id, res.reply.num_steps)
            if took > deadline:  # its reply arrives after the round closed
                why = f"straggler: took {took:.1f} simulated s, the deadline is {deadline:.1f} s"
                return Failure(job.client_id, job.ins.round, stage, FailureKind.TIMED_OUT, why)
        self.memories[job.client_id] = res.memory
        return res.reply

    def close(self) -> None:
        self.backend.close()
