"""The gRPC transport over mutual TLS: the coordinator's server (:mod:`.server`), the
participant's loop (:mod:`.client`) and the stream's framing (:mod:`.frames`).

Nothing here knows the federation's PKI: the server takes a callable that checks a peer's
certificate, and the client takes its TLS credentials as bytes.
"""

__all__: list[str] = []
