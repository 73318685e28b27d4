"""The Ray backend: participants run in a small pool of Ray actors, on this machine or a
Ray cluster.

Each actor receives the (picklable) client factory once, when it is created, and builds
its participants itself, so a :class:`~fedswarm.run.participants.ConfiguredClients`
loads the dataset in the actor and client data never leaves it. A participant with an open
session is sent back to its actor (:mod:`.routing`); other jobs go out in chunks:
the jobs of a round share their parameter vector (and SCAFFOLD's control variate), and a
chunk is pickled once, so a shared array is copied once per chunk rather than once per
job. Per-call overhead is what chunking saves: 100 jobs of a 100,000-parameter model on two
actors cost about 0.5 s of Ray overhead sent one by one and 50 ms in chunks, of which a
``ray.put`` of the shared parameters would save a further 15 ms or so.

Ray is an optional dependency, imported only when a :class:`RayBackend` is made.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from fedswarm.client import Sessions
from fedswarm.messages import ClientId
from fedswarm.simulation.backends import (
    ClientFactory,
    Job,
    JobResult,
    check_picklable,
    run_job,
)
from fedswarm.simulation.routing import StickyRouter

if TYPE_CHECKING:
    from ray.actor import ActorHandle

__all__ = ["RayBackend", "gpus_per_actor_of"]

_INSTALL_HINT = 'the ray backend needs Ray: pip install "fedswarm[ray]" (or "ray>=2.55,<3")'


class _ParticipantHost:
    """The body of one Ray actor: participants built with its own copy of the factory."""

    def __init__(
        self, make_client: ClientFactory, warm_up: ClientId | None = None, tf32: bool | None = None
    ) -> None:
        from fedswarm.pytorch.settings import worker_torch_settings

        worker_torch_settings(tf32)  # the actors are the parallelism
        self._make_client = make_client
        self._sessions = Sessions()  # the in-round state of the participants it runs
        if warm_up is not None:
            make_client(warm_up)  # loads the data and builds the learner, once per actor

    def ready(self) -> bool:
        return True

    def run(self, jobs: Sequence[Job]) -> list[JobResult]:
        return [run_job(self._make_client, job, self._sessions) for job in jobs]


class RayBackend:
    """Participants in ``actors`` Ray actors of one CPU each (default: one per CPU Ray
    reports); they hold their CPUs from :meth:`start` (or the first batch) until :meth:`close`.

    Making the backend connects to Ray: ``address="auto"`` joins a running cluster
    (fedswarm must be importable on its nodes); ``None`` starts a local Ray with
    ``num_cpus`` CPUs (default: all), no dashboard, and, if this backend is the first to
    import ray, its servers on loopback only. A Ray the caller already initialised is used
    as it is and left running by :meth:`close`, which shuts down only a Ray this backend
    started (for ``"auto"``: disconnects from the cluster).

    ``gpus_per_actor``: each actor's share of a GPU (Ray's ``num_gpus``: Ray places actors
    on GPUs and sets ``CUDA_VISIBLE_DEVICES`` in each); None: the cluster's GPUs split
    evenly between the actors. ``tf32``: see ``worker_torch_settings`` (None: CPU actors).
    """

    def __init__(
        self,
        address: str | None = None,
        actors: int | None = None,
        num_cpus: int | None = None,
        *,
        gpus_per_actor: float | None = 0.0,
        tf32: bool | None = None,
    ) -> None:
        if actors is not None and actors < 1:
            raise ValueError(f"actors must be at least 1, got {actors}")
        if num_cpus is not None and (num_cpus < 1 or address is not None):
            raise ValueError(
                f"num_cpus (got {num_cpus}) must be at least 1 and applies only to a local Ray "
                "(address unset)"
            )
        if address is None and "ray" not in sys.modules:
            # Ray's single-machine mode (its default on macOS and Windows): its servers bind
            # to loopback, not to every interface. Read once, when ray is first imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        self.address = address
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            _init_ray(address, num_cpus)
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        self.actors = actors or max(1, int(cpus))
        gpus = ray.cluster_resources().get("GPU", 0)  # type: ignore[no-untyped-call]
        try:
            self.gpus_per_actor = gpus_per_actor_of(gpus_per_actor, gpus, self.actors)
        except ValueError:
            if self._owns_ray:
                ray.shutdown()
            raise
        self.tf32 = tf32
        self._hosts: list[ActorHandle[_ParticipantHost]] = []
        self._factory: ClientFactory | None = None
        self._router: StickyRouter[Any] | None = None

    def start(self, make_client: ClientFactory, warm_up: ClientId | None = None) -> None:
        """Create the actors now and wait until each has built participant ``warm_up``."""
        import ray

        hosts = self._hosts_for(make_client, warm_up)
        try:
            ray.get([host.ready.remote() for host in hosts])
        except BaseException:
            self._kill_hosts()
            raise

    def run(self, make_client: ClientFactory, jobs: Sequence[Job]) -> list[JobResult]:
        import ray

        if not jobs:
            return []
        hosts = self._hosts_for(make_client)
        if self._router is None:
            self._router = StickyRouter(
                len(hosts),
                submit=lambda w, batch: hosts[w].run.remote(batch),
                wait=lambda refs: ray.wait(list(refs), num_returns=1)[0],
                fetch=ray.get,
            )
        try:
            return self._router.run(jobs)
        except BaseException:
            self._kill_hosts()  # a lost actor or an interrupt: fresh actors next time
            raise

    def _hosts_for(
        self, make_client: ClientFactory, warm_up: ClientId | None = None
    ) -> list[ActorHandle[_ParticipantHost]]:
        if self._hosts and self._factory == make_client:  # equal factories build alike
            return self._hosts  # (a new ConfiguredClients of the same config keeps its actors)
        import ray

        self._kill_hosts()
        check_picklable(make_client)
        host = ray.remote(num_cpus=1, num_gpus=self.gpus_per_actor)(_ParticipantHost)
        self._hosts = [
            cast("ActorHandle[_ParticipantHost]", host.remote(make_client, warm_up, self.tf32))
            for _ in range(self.actors)
        ]
        self._factory = make_client
        return self._hosts

    def _kill_hosts(self) -> None:
        import ray

        for host in self._hosts:
            ray.kill(host)
        self._hosts, self._factory, self._router = [], None, None

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            self._kill_hosts()
        else:  # shut down by someone else, and the actors with it
            self._hosts, self._factory, self._router = [], None, None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def gpus_per_actor_of(requested: float | None, cluster_gpus: float, actors: int) -> float:
    """Each actor's GPU share: ``requested``, or (None) the cluster's GPUs split evenly,
    at most one each."""
    if requested is not None:
        if requested < 0:
            raise ValueError(f"gpus_per_actor must be at least 0, got {requested}")
        return requested
    if cluster_gpus <= 0:
        raise ValueError(
            "simulation.device asks the ray backend to train on a GPU, but the Ray cluster "
            'has none: set simulation.device = "cpu", or start Ray where the GPUs are'
        )
    return min(1.0, cluster_gpus / actors)


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    options: dict[str, Any] = {"address": address}
    if address is None:
        options.update(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
    with warnings.catch_warnings():
        # A tip about GPU visibility for tasks that request no GPUs: ours request none, and
        # it is not for a fedswarm user to act on.
        warnings.filterwarnings("ignore", "Tip: In future versions of Ray", FutureWarning)
        ray.init(**options, log_to_driver=False, logging_level=logging.WARNING)
