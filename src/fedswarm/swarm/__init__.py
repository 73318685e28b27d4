"""Swarm learning: serverless peers, a replicated signed ledger, merges every peer checks.

- :mod:`~fedswarm.swarm.records` -- the record format (envelope, canonical bytes, digest,
  signature);
- :mod:`~fedswarm.swarm.ledger` -- the hash chain and its checks, the ``ledger.jsonl`` file;
- :mod:`~fedswarm.swarm.view` -- what a checked ledger says (contributions, closes, attestations);
- :mod:`~fedswarm.swarm.peer` -- one peer's round as a generator of steps (no I/O);
- :mod:`~fedswarm.swarm.simulate` -- N peers in one process, the ledger's order simulated;
- :mod:`~fedswarm.swarm.consensus` -- the ledger replicated by an etcd cluster under the PKI.
"""

__all__: list[str] = []
