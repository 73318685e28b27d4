"""Swarm learning: serverless peers, a replicated signed ledger, merges every peer checks.

- :mod:`~fedswarm.swarm.records` -- the record format (envelope, canonical bytes, digest,
  signature), shared with any layer that keeps a signed run ledger;
- :mod:`~fedswarm.swarm.ledger` -- the hash chain and its checks, the ``ledger.jsonl`` file;
- :mod:`~fedswarm.swarm.view` -- what a checked ledger says (contributions, closes, attestations);
- :mod:`~fedswarm.swarm.peer` -- one peer's round as a generator of steps (no I/O);
- :mod:`~fedswarm.swarm.simulate` -- N peers in one process, the ledger's order simulated;
- :mod:`~fedswarm.swarm.etcd` -- the consensus: an etcd member per peer under the PKI, and why;
- :mod:`~fedswarm.swarm.blobs` -- update blobs served and fetched over mutual TLS;
- :mod:`~fedswarm.swarm.node` -- a peer process's driver of the round generators;
- :mod:`~fedswarm.swarm.config` -- the ``[swarm]`` table;
- :mod:`~fedswarm.swarm.cli` -- ``fedswarm ledger verify|show``.

``fedswarm peer`` itself is built from a run config in :mod:`fedswarm.deploy.peer`.
"""

__all__: list[str] = []
