"""A node's side of ``fedswarm server`` / ``fedswarm client``: its credentials and its data.

``--pki DIR`` is a directory laid out like the CA's (``fedswarm ca init``): ``ca.crt``,
``nodes/NAME.key`` and ``nodes/NAME.crt`` (and ``ca.crl`` on the coordinator). On one
machine that is the CA directory itself; on a participant's machine, a copy of just those
files. ``--data`` is ``partition`` (this participant's share of the dataset the
coordinator's config names, cut by the same seed as in simulation) or a ``.npz`` file of
the participant's own arrays (``x_train``, ``y_train`` and optionally ``x_test``,
``y_test``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from fedswarm.attacks import COLLUDING, AttackConfig, malicious_app
from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.kinds import BUILTIN_KINDS
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.settings import set_torch_settings
from fedswarm.run.build import build_strategy, data_spec, paradigm
from fedswarm.run.config import loads_config
from fedswarm.run.models import model_factory
from fedswarm.run.participants import configured_dataset
from fedswarm.secagg import KINDS as SECAGG_KINDS
from fedswarm.secagg import KeyBinding
from fedswarm.secagg.messages import AdvertiseRes
from fedswarm.security.pki import NodePaths, PeerRejected, Role, TrustStore
from fedswarm.security.signing import NodeSigner, SignatureInvalid, verify_signature
from fedswarm.split import KINDS as SPLIT_KINDS
from fedswarm.transport.grpc.client import AppFactory
from fedswarm.transport.grpc.frames import RunSpec
from fedswarm.transport.grpc.tls import PeerCheck, PeerRefused, TlsIdentity

# What a deployed participant can read: the messages of every paradigm fedswarm runs (its
# handlers, built from the coordinator's config, decide which it answers).
# A participant learns its run's protocol only once connected: it reads every kind.
PARTICIPANT_KINDS = SECAGG_KINDS.extended(*(k for k in SPLIT_KINDS if k not in set(BUILTIN_KINDS)))

__all__ = [
    "PARTICIPANT_KINDS",
    "PARTITION",
    "NodeSetupError",
    "certificate_problem",
    "find_node",
    "member_check",
    "node_binding",
    "participant_factory",
    "peer_check",
    "tls_identity",
]

PARTITION = "partition"


class NodeSetupError(ValueError):
    """A node cannot start: missing credentials, unusable data. Says which and what to do."""


def find_node(pki: Path, role: Role, name: str | None = None) -> NodePaths:
    """``name``'s credentials under ``pki``; without a name, the only ``role`` node there."""
    nodes, ca = pki / "nodes", pki / "ca.crt"
    if not ca.is_file():
        raise NodeSetupError(f"{ca} is missing: --pki must hold the federation's ca.crt")
    if name is None:
        names = [c.stem for c in sorted(nodes.glob("*.crt")) if _role(c) == role.value]
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise NodeSetupError(
                f"{nodes} holds {len(names)} {role.value} certificates ({found}): pass --name"
            )
        name = names[0]
    key, cert = nodes / f"{name}.key", nodes / f"{name}.crt"
    for path in (key, cert):
        if not path.is_file():
            raise NodeSetupError(
                f"{path} is missing: issue it with `fedswarm ca issue {name} --role {role.value}`"
                " and copy it (with its .key) into --pki's nodes/"
            )
    if (got := _role(cert)) != role.value:
        raise NodeSetupError(f"{cert} is a {got} certificate; this node needs a {role.value} one")
    return NodePaths(name, role, key, cert, ca)


def certificate_problem(node: NodePaths) -> str | None:
    """Why a coordinator would refuse ``node``'s certificate, judged by the node's own CA
    certificate (issued by another CA, expired, not yet valid, the wrong role); None if
    nothing is wrong with it here (revocation is the coordinator's to know)."""
    try:
        ca = x509.load_pem_x509_certificate(node.ca_cert.read_bytes())
        TrustStore(ca, frozenset()).verify(node.cert.read_bytes(), node.role)
    except PeerRejected as err:
        return f"{node.cert}: {err}"
    except (OSError, ValueError) as err:
        return f"{node.cert} or {node.ca_cert} cannot be read: {err}"
    return None


def tls_identity(node: NodePaths) -> TlsIdentity:
    """``node``'s credentials as the gRPC transport takes them."""
    return TlsIdentity.from_files(node.key, node.cert, node.ca_cert)


def peer_check(trust: TrustStore, role: Role) -> PeerCheck:
    """The gRPC server's check of a connecting peer: a ``role`` certificate of this
    federation, neither revoked nor expired; its identity is its common name."""

    def check(cert_pem: bytes) -> str:
        try:
            return trust.verify(cert_pem, role)
        except PeerRejected as err:
            raise PeerRefused(str(err)) from None

    return check


def _role(cert: Path) -> str:
    try:
        subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject
    except ValueError as exc:
        raise NodeSetupError(f"{cert} is not a PEM certificate: {exc}") from None
    units = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(units[0].value) if units else "unknown"


@dataclass(frozen=True)
class _Schema:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int


def participant_factory(
    name: str,
    data: str,
    *,
    own_process: bool = False,
    attack: AttackConfig | None = None,
    binding: KeyBinding | None = None,
) -> AppFactory:
    """Builds participant ``name`` for the run the coordinator describes, on ``data``;
    ``binding`` signs its secure-aggregation keys (:func:`node_binding`).

    ``own_process``: the process is this participant's (``fedswarm client``), so it takes
    the run's torch settings for good: deterministic kernels and its thread count, as in
    simulation (same model, same bits). ``attack``: A TEST TOOL for an operator probing
    their own defences; the participant poisons its data or updates as the attack says.
    """

    own = None if data == PARTITION else load_npz(Path(data))  # bad data fails before dialling
    if attack is not None and attack.attack_kind in COLLUDING:
        raise NodeSetupError(
            f"attack {attack.attack_kind.value!r} needs every participant's honest update: "
            "it exists in simulation only"
        )

    def build(spec: RunSpec) -> ClientApp:
        config = loads_config(spec.config_toml, "the coordinator's config")
        if own_process:
            set_torch_settings(config.simulation.threads)
        if data == PARTITION:
            dataset = configured_dataset(data_spec(config.data, config.seed))
            if name not in set(dataset.client_ids()):
                some = ", ".join(list(dataset.client_ids())[:5])
                raise NodeSetupError(
                    f"{name!r} is not a client of the {dataset.name} partition the config "
                    f"describes (its clients are {some}, ...): use one of those names"
                )
            local = dataset.client(name)
        else:
            assert own is not None
            local = own
        schema = _Schema(spec.data_name, spec.input_shape, spec.num_classes)
        _check_fits(data, local, schema)
        model_fn = model_factory(config.model, schema)
        rounds = paradigm(config, build_strategy(config), model_fn, binding=binding)
        app = ClientApp(name, TorchLearner(model_fn), local, rounds.handlers)
        if attack is not None:
            return malicious_app(app, attack, schema.num_classes, config.seed)
        return app

    return build


def node_binding(node: NodePaths) -> KeyBinding:
    """Secure aggregation's keys bound to node identities: this node signs its advertised
    keys with its node key; a neighbour's are accepted only under a certificate this
    federation's CA issued to that very name (so a coordinator cannot swap a key)."""
    signer = NodeSigner.load(node.key, node.cert)
    return KeyBinding(signer.sign, member_check(node.ca_cert), signer.cert_pem)


def member_check(ca_cert: Path) -> Callable[[AdvertiseRes, bytes], bool]:
    """Whether an advert's keys are signed under a certificate ``ca_cert`` issued to its
    sender. Revocation is the coordinator's to check (its TLS refuses revoked peers)."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())

    def check(advert: AdvertiseRes, data: bytes) -> bool:
        try:
            x509.load_pem_x509_certificate(advert.certificate).verify_directly_issued_by(ca)
            who = verify_signature(advert.certificate, data, advert.signature)
        except (ValueError, TypeError, InvalidSignature, SignatureInvalid, PeerRejected):
            return False
        return who == advert.client_id

    return check


def load_npz(path: Path) -> ClientData:
    """A participant's own arrays: ``x_train``, ``y_train`` [, ``x_test``, ``y_test``]."""
    if not path.is_file():
        raise NodeSetupError(f"--data {path}: no such file (give a .npz file or 'partition')")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise NodeSetupError(f"--data {path} is not a readable .npz file: {exc}") from None
    missing = {"x_train", "y_train"} - arrays.keys()
    if missing:
        raise NodeSetupError(f"--data {path} lacks {sorted(missing)} (has {sorted(arrays)})")

    def part(x: str, y: str) -> ArrayDataset:
        xs = arrays.get(x, np.zeros((0, *arrays["x_train"].shape[1:]), np.float32))
        ys = arrays.get(y, np.zeros(0, np.int64))
        if not np.issubdtype(xs.dtype, np.integer):  # token ids stay integers
            xs = xs.astype(np.float32)
        if not np.issubdtype(ys.dtype, np.integer):
            raise NodeSetupError(f"--data {path}: {y} must hold integer class ids, not {ys.dtype}")
        try:
            return ArrayDataset(np.ascontiguousarray(xs), ys.astype(np.int64))
        except (TypeError, ValueError) as exc:
            raise NodeSetupError(f"--data {path}: {x}/{y}: {exc}") from None

    return ClientData(part("x_train", "y_train"), part("x_test", "y_test"))


def _check_fits(source: str, local: ClientData, schema: _Schema) -> None:
    for part in (local.train, local.test):
        if part.x.shape[1:] != schema.input_shape:
            raise NodeSetupError(
                f"--data {source}: samples of shape {part.x.shape[1:]}, but the run's model "
                f"takes {schema.input_shape} ({schema.name})"
            )
        if len(part) and (part.y.min() < 0 or part.y.max() >= schema.num_classes):
            raise NodeSetupError(
                f"--data {source}: labels must be 0..{schema.num_classes - 1} "
                f"({schema.name}), found {part.y.min()}..{part.y.max()}"
            )
