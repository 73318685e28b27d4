"""Running a federation for real: the coordinator (:mod:`.coordinator`, which keeps its state
in a :class:`fedswarm.run.store.RunStore`) and a participant's setup (:mod:`.node`:
credentials and data), over the gRPC transport (:mod:`fedswarm.transport.grpc`) and the PKI
(:mod:`fedswarm.security`)."""

__all__: list[str] = []
