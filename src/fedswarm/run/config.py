"""Run configuration: TOML validated by pydantic into frozen objects, at the edge only.

Unknown or ill-typed keys are errors that name the key and the allowed values. Each
algorithm has its own table of options (``[strategy] name = "fedprox"`` takes ``mu``;
``name = "fedavg"`` does not), so a misplaced option cannot be silently ignored.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import tomli_w
from pydantic import (
    BaseModel,
    Field,
    PositiveInt,
    ValidationError,
    model_validator,
)

from fedswarm.aggregation import AggregatorName, Weighting
from fedswarm.attacks.config import AttackConfig, check_attack
from fedswarm.data.partition import DirichletScheme, Partition
from fedswarm.data.registry import DatasetName
from fedswarm.privacy.config import PrivacyConfig
from fedswarm.privacy.dpfedavg import Mechanism
from fedswarm.run._frozen import Frozen as _Frozen
from fedswarm.run.aggregators import AggregatorConfig, MeanOptions, check_aggregator
from fedswarm.secagg.config import SecureAggregationConfig
from fedswarm.split.config import SplitConfig
from fedswarm.split.modes import SplitMode
from fedswarm.swarm.config import SwarmConfig
from fedswarm.training import OptimizerKind, Precision

__all__ = [
    "BackendKind",
    "ClientConfig",
    "ConfigError",
    "DataConfig",
    "DatasetName",
    "DeviceKind",
    "DriftConfig",
    "EvaluationConfig",
    "FedAvgConfig",
    "FedAvgMConfig",
    "FedOptConfig",
    "FedProxConfig",
    "ModelConfig",
    "ModelName",
    "RunConfig",
    "SamplingKind",
    "ScaffoldConfig",
    "SimulationConfig",
    "SplitConfig",
    "StoreConfig",
    "StrategyConfig",
    "config_sha256",
    "dump_config",
    "load_config",
    "loads_config",
    "parse_config",
    "raw_config",
]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message lists every problem."""


class ModelName(enum.Enum):
    MLP = "mlp"  # hidden: sizes of hidden layers
    CNN = "cnn"  # channels, hidden: McMahan et al.'s CNN for images
    LSTM = "lstm"  # embed, hidden, layers: LEAF's character LSTM
    LOGREG = "logreg"  # multinomial logistic regression


class DataConfig(_Frozen):
    name: DatasetName = DatasetName.DIGITS
    num_clients: int | None = Field(
        None, ge=1, description="clients; natural datasets keep at most this many; unset: all"
    )
    partition: Partition | None = Field(None, description="unset: IID, or natural clients")
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    dirichlet_scheme: DirichletScheme = Field(
        DirichletScheme.LABELS, description="labels: split each label; clients: label mixes"
    )
    min_size: int = Field(2, ge=0, description="dirichlet: fewest samples per client")
    shards_per_client: int = Field(2, ge=1)
    exponent: float = Field(1.5, gt=0, description="power-law exponent for quantity skew")
    local_test_fraction: float = Field(0.2, ge=0, lt=1)
    normalize: bool = Field(False, description="fashion_mnist: standardise pixels")
    min_chars: int = Field(1000, ge=1, description="shakespeare: fewest characters per speaker")
    max_samples_per_client: int | None = Field(None, ge=1, description="shakespeare, synthetic")
    synthetic_alpha: float = Field(1.0, ge=0, description="Synthetic(alpha, beta) model skew")
    synthetic_beta: float = Field(1.0, ge=0, description="Synthetic(alpha, beta) data skew")


class ModelConfig(_Frozen):
    name: ModelName = ModelName.MLP
    hidden: tuple[PositiveInt, ...] = Field((64,), min_length=1)
    channels: tuple[PositiveInt, PositiveInt] = (32, 64)
    embed: int = Field(8, ge=1)
    layers: int = Field(2, ge=1)


class ClientConfig(_Frozen):
    """Local training: ``epochs`` passes over the data, or exactly ``steps`` batches."""

    epochs: int | None = Field(1, ge=1)
    steps: int | None = Field(None, ge=1)
    batch_size: int = Field(10, ge=1)
    optimizer: OptimizerKind = OptimizerKind.SGD
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    precision: Precision = Field(
        Precision.FP32, description="bf16: bfloat16 autocast in local training's forward"
    )

    @model_validator(mode="before")
    @classmethod
    def _steps_replace_epochs(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("steps") is not None and "epochs" not in raw:
            return {**raw, "epochs": None}  # steps given alone: the default epochs gives way
        return raw

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> ClientConfig:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of client.epochs and client.steps")
        return self


class SamplingKind(enum.Enum):
    FIXED = "fixed"  # max(min_clients, ceil(fraction * K)) clients without replacement
    POISSON = "poisson"  # each client independently with probability fraction (DP's)


class _Sampling(_Frozen):
    aggregator: AggregatorName = Field(
        AggregatorName.MEAN, description="its options in the [aggregator] table"
    )
    sampling: SamplingKind = SamplingKind.FIXED
    clients_per_round: int | None = Field(None, ge=1, description="exact count per round")
    fraction: float = Field(1.0, gt=0, le=1, description="C: fraction of clients per round")
    min_clients: int = Field(1, ge=1)
    min_replies: int = Field(1, ge=1, description="quorum: fewer replies fail the round")
    clip_norm: float | None = Field(
        None, gt=0, description="participants clip their update to this L2 norm before sending"
    )
    deadline_s: float | None = Field(
        None, gt=0, description="round deadline (simulation: simulated device seconds)"
    )


class FedAvgConfig(_Sampling):
    name: Literal["fedavg"] = "fedavg"
    weighting: Weighting = Weighting.EXAMPLES


class FedAvgMConfig(_Sampling):
    name: Literal["fedavgm"]
    server_lr: float = Field(1.0, gt=0)
    server_momentum: float = Field(0.9, ge=0, lt=1)


class FedProxConfig(_Sampling):
    name: Literal["fedprox"]
    mu: float = Field(0.01, ge=0)


class FedOptConfig(_Sampling):
    name: Literal["fedadam", "fedyogi", "fedadagrad"]
    server_lr: float = Field(0.01, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    tau: float = Field(1e-3, gt=0)


class ScaffoldConfig(_Sampling):
    name: Literal["scaffold"]
    server_lr: float = Field(1.0, gt=0)


StrategyConfig = Annotated[
    FedAvgConfig | FedAvgMConfig | FedProxConfig | FedOptConfig | ScaffoldConfig,
    Field(discriminator="name"),
]


class BackendKind(enum.Enum):
    SEQUENTIAL = "sequential"  # one participant after another; errors re-raised (debug)
    VECTORIZED = "vectorized"  # a round's participants trained at once with torch.func
    PROCESS = "process"  # a local pool of worker processes
    RAY = "ray"  # a pool of Ray actors, on this machine or a Ray cluster


class DeviceKind(enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"  # an error where torch sees no CUDA device
    AUTO = "auto"  # cuda where torch sees one, else cpu


class SimulationConfig(_Frozen):
    backend: BackendKind = BackendKind.VECTORIZED
    device: DeviceKind = Field(DeviceKind.CPU, description="where participants train")
    tf32: bool = Field(False, description="cuda: TF32 matmuls and convolutions")
    ray_gpus_per_actor: float | None = Field(
        None, gt=0, description="ray on cuda: GPUs per actor; unset: the GPUs shared evenly"
    )
    workers: int = Field(2, ge=1, description="process backend: worker processes")
    threads: int = Field(1, ge=1, description="torch intra-op threads per process")
    ray_address: str | None = Field(
        None, description="ray: 'auto' joins a running cluster; unset starts a local one"
    )
    ray_actors: int | None = Field(None, ge=1, description="ray: actors; unset: one per CPU")
    # Simulated devices (all deterministic in the seed and the client id):
    dropout: float = Field(0.0, ge=0, lt=1, description="chance a sampled client vanishes")
    speed_sigma: float = Field(0.0, ge=0, description="log-normal spread of device speeds")
    steps_per_second: float = Field(100.0, gt=0, description="a median device's local steps/s")
    min_epochs: int | None = Field(
        None, ge=1, description="each client does U{min_epochs..client.epochs} epochs a round"
    )
    max_clients_per_chunk: int | None = Field(
        None, ge=1, description="vectorized: clients trained at once; unset: automatic"
    )

    @model_validator(mode="after")
    def _gpus_need_a_gpu_device(self) -> SimulationConfig:
        if self.ray_gpus_per_actor is not None and self.device is DeviceKind.CPU:
            raise ValueError(
                'simulation.ray_gpus_per_actor needs simulation.device = "cuda" or "auto"; '
                "remove it to train on the CPU"
            )
        return self

    @property
    def simulates_devices(self) -> bool:
        return bool(self.dropout or self.speed_sigma or self.min_epochs)


class EvaluationConfig(_Frozen):
    every: int = Field(1, ge=1, description="evaluate every k rounds (and after the last)")
    central: bool = Field(True, description="on the held-out central test set")
    federated_clients: int = Field(0, ge=0, description="clients evaluating locally; 0: none")


class DeploymentConfig(_Frozen):
    """How a coordinator (``fedswarm server``) runs the config across machines."""

    clients: int | None = Field(
        None,
        ge=1,
        description="participants to wait for before each round; unset: data.num_clients",
    )
    join_timeout_s: float = Field(
        300.0, gt=0, description="then start the round with those connected (if a quorum)"
    )
    max_message_mb: int = Field(1024, ge=1, description="largest message accepted, MiB")
    max_uploads: int = Field(2, ge=1, description="replies received at once (bounds memory)")
    max_downloads: int = Field(2, ge=1, description="instructions sent at once (bounds memory)")


class StoreConfig(_Frozen):
    """Which rounds' model versions the run store keeps (every round's row is kept, with its
    parent: a pruned version loses only its file). The last round is always resumable."""

    keep_every: int = Field(
        1, ge=0, description="keep every k-th round's model (round 0 too); 0: only the last"
    )
    keep_last: int = Field(2, ge=1, description="always keep the last k rounds' models")
    keep_updates: bool = Field(
        False,
        description="keep each round's participant updates (content-addressed, "
        "updates/<sha256>.safetensors: replied x dim float32) for contribution scores",
    )
    keep_states: bool = Field(
        False,
        description="keep each kept version's resume state too (server optimiser, memories), "
        "so `fedswarm models rollback` can continue from it; else only the last round's",
    )

    def keeps(self, round_: int, last: int) -> bool:
        """Whether round ``round_``'s version is kept once round ``last`` is committed."""
        every = self.keep_every > 0 and round_ % self.keep_every == 0
        return every or round_ > last - self.keep_last


class DriftConfig(_Frozen):
    """Drift monitoring: each participant's train loss and update norm against its own
    history and the round's federation; flags go to the round's metrics (``drift/...``)
    and the run store's ``drift`` table."""

    enabled: bool = True
    window: int = Field(10, ge=2, description="rounds of a participant's own history compared")
    min_history: int = Field(3, ge=2, description="past rounds needed for a self z-score")
    self_threshold: float = Field(3.0, gt=0, description="|z| against its own history that flags")
    federation_threshold: float = Field(
        3.5, gt=0, description="|robust z| (median, MAD) against the round's participants"
    )
    min_federation: int = Field(4, ge=3, description="participants needed for a federation z")

    @model_validator(mode="after")
    def _history_fits_window(self) -> DriftConfig:
        if self.min_history > self.window:
            raise ValueError(f"min_history ({self.min_history}) exceeds window ({self.window})")
        return self


class RunConfig(_Frozen):
    seed: int = Field(0, ge=0)
    rounds: int = Field(50, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    client: ClientConfig = ClientConfig()
    strategy: StrategyConfig = FedAvgConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    simulation: SimulationConfig = SimulationConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    store: StoreConfig = StoreConfig()
    swarm: SwarmConfig | None = None  # present: a swarm of peers instead of a server
    aggregator: AggregatorConfig = MeanOptions()  # options of strategy.aggregator
    attack: AttackConfig | None = None  # simulated Byzantine participants (a test tool)
    secure_aggregation: SecureAggregationConfig | None = None

    drift: DriftConfig = DriftConfig()
    forgotten: tuple[str, ...] = Field(
        (),
        description="participants never sampled (`fedswarm models forget`): each round samples "
        "from everyone and drops these, so the others' samples do not shift",
    )
    split: SplitConfig | None = None  # set: split learning instead of federated rounds
    privacy: PrivacyConfig | None = None

    @model_validator(mode="after")
    def _robust_limits(self) -> RunConfig:
        per_round = _clients_per_round(self)
        check_aggregator(self.strategy.aggregator, self.aggregator, per_round)
        if self.attack is not None:
            check_attack(self.attack, self.data.num_clients)
        return self

    @model_validator(mode="after")
    def _secure_aggregation_sums_only(self) -> RunConfig:
        if self.secure_aggregation is None:
            return self
        if isinstance(self.strategy, ScaffoldConfig):
            raise ValueError(
                "[secure_aggregation] gives the coordinator only the sum of the updates, but "
                "strategy.name = 'scaffold' needs each participant's control delta"
            )
        if self.strategy.aggregator is not AggregatorName.MEAN:
            raise ValueError(
                "[secure_aggregation] gives the coordinator only the sum of the updates, but "
                f"strategy.aggregator = {self.strategy.aggregator.value!r} needs each update: "
                "use strategy.aggregator = 'mean' or drop [secure_aggregation]"
            )
        if self.store.keep_updates:
            raise ValueError(
                "[secure_aggregation] gives the coordinator only the sum of the updates, but "
                "store.keep_updates = true keeps each one: set it false"
            )
        return self

    @model_validator(mode="after")
    def _split_fits(self) -> RunConfig:
        s, c = self.split, self.client
        if s is None:
            return self
        if c.steps is not None or c.epochs != 1:
            raise ValueError("split learning's round is one epoch: set client.epochs = 1")
        short = self.model.name is ModelName.MLP and len(self.model.hidden) < 2
        if s.mode is SplitMode.U_SHAPED and s.cut is None and short:
            raise ValueError(
                "split mode 'u_shaped' cuts the mlp after its first hidden block and before "
                "its output layer, leaving the server nothing: give model.hidden two layers"
            )
        return self

    @model_validator(mode="after")
    def _poisson_has_a_rate_only(self) -> RunConfig:
        s = self.strategy
        fixed_size = s.clients_per_round is not None or s.min_clients != 1
        if s.sampling is SamplingKind.POISSON and fixed_size:
            raise ValueError(
                'strategy.sampling = "poisson" samples each client with probability '
                "strategy.fraction: remove strategy.clients_per_round and strategy.min_clients"
            )
        return self

    @model_validator(mode="after")
    def _privacy_keeps_its_guarantee(self) -> RunConfig:
        if self.privacy is None:
            return self
        s, why = self.strategy, ""
        if s.sampling is not SamplingKind.POISSON:
            why = (
                'set strategy.sampling = "poisson": the accountant assumes each client is '
                "sampled independently with probability strategy.fraction"
            )
        elif s.clip_norm is not None:
            why = "remove strategy.clip_norm: under [privacy] the clip norm is privacy.clip_norm"
        elif isinstance(s, ScaffoldConfig):
            why = "strategy 'scaffold' averages control variates without noise; use fedavg"
        elif (
            self.privacy.mechanism is Mechanism.CENTRAL
            and isinstance(s, FedAvgConfig)
            and s.weighting is Weighting.EXAMPLES
        ):
            why = (
                'set strategy.weighting = "uniform": an example-weighted mean under central DP '
                "lets a participant's influence grow with its example count"
            )
        if why:
            raise ValueError(f"[privacy] with these [strategy] keys breaks the guarantee: {why}")
        return self

    @model_validator(mode="after")
    def _scaffold_needs_plain_sgd(self) -> RunConfig:
        plain = self.client.optimizer is OptimizerKind.SGD and self.client.momentum == 0
        if isinstance(self.strategy, ScaffoldConfig) and not plain:
            raise ValueError(
                "strategy 'scaffold' needs plain local SGD (option II control variates): set "
                'client.optimizer = "sgd" and client.momentum = 0'
            )
        return self


def _clients_per_round(config: RunConfig) -> int | None:
    """Participants sampled each round, when the config fixes it (else None)."""
    s, k = config.strategy, config.data.num_clients
    if s.clients_per_round is not None:
        return min(s.clients_per_round, k) if k else s.clients_per_round
    if k is None:
        return None
    return min(max(s.min_clients, math.ceil(s.fraction * k - 1e-9)), k)


_UNIONS = ("strategy", "aggregator", "attack")  # tables whose second key is a union's tag


def _location(loc: tuple[Any, ...]) -> str:
    """Dotted key of an error, without a union's tag (``strategy.fedprox.mu``)."""
    parts = [p for i, p in enumerate(loc) if not (i == 1 and loc[0] in _UNIONS)]
    return ".".join(str(p) for p in parts) or "(top level)"


def _describe(err: dict[str, Any]) -> str:
    where = _location(err["loc"])
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {where!r}"
        parent = _allowed_keys(err["loc"][:-1])
        if parent:
            msg += f"; allowed keys here: {', '.join(parent)}"
        return msg
    return f"{where}: {msg}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for i, part in enumerate(loc):
        if i == 1 and loc[0] in _UNIONS and (tagged := _tagged(str(loc[0]), str(part))):
            model = tagged
            continue
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        # an optional table (``swarm: SwarmConfig | None``) lists its model's keys
        ann = next(
            (a for a in get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)), ann
        )
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            if str(part) not in _UNIONS:
                return []
            continue
        model = ann
    return sorted(model.model_fields)


_STRATEGY_BY_NAME: dict[str, type[BaseModel]] = {
    "fedavg": FedAvgConfig,
    "fedavgm": FedAvgMConfig,
    "fedprox": FedProxConfig,
    "fedadam": FedOptConfig,
    "fedyogi": FedOptConfig,
    "fedadagrad": FedOptConfig,
    "scaffold": ScaffoldConfig,
}


def _tagged(table: str, tag: str) -> type[BaseModel] | None:
    """The model a union table's tag selects (``strategy`` by name, ...), if any."""
    if table == "strategy":
        return _STRATEGY_BY_NAME.get(tag)
    from fedswarm.attacks.config import ATTACK_BY_KIND
    from fedswarm.run.aggregators import OPTIONS_BY_NAME

    return (OPTIONS_BY_NAME if table == "aggregator" else ATTACK_BY_KIND).get(tag)


def _with_aggregator_name(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``[aggregator]`` table tagged with ``strategy.aggregator``: the options are read
    for the kernel the strategy names, so a misplaced option is an unknown key."""
    table = raw.get("aggregator", {})
    if not isinstance(table, dict):
        return raw  # validation reports the type
    if "name" in table:
        raise ConfigError("aggregator.name: name the aggregator in strategy.aggregator")
    strategy = raw.get("strategy")
    name = strategy.get("aggregator", "mean") if isinstance(strategy, dict) else "mean"
    return {**raw, "aggregator": {"name": name, **table}}


def parse_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    strategy = raw.get("strategy")
    if isinstance(strategy, dict) and "name" not in strategy:  # as if the table were absent
        raw = {**raw, "strategy": {"name": "fedavg", **strategy}}
    try:
        raw = _with_aggregator_name(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source} is not a valid fedswarm config:\n  - {exc}") from None
    try:
        return RunConfig.model_validate_json(json.dumps(raw, allow_nan=True, default=str))
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(dict(e))}" for e in exc.errors())
        raise ConfigError(f"{source} is not a valid fedswarm config:\n{problems}") from None


def loads_config(text: str, source: str = "config") -> RunConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    return parse_config(raw, source)


def load_config(path: Path) -> RunConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return loads_config(text, str(path))


def raw_config(config: RunConfig) -> dict[str, Any]:
    """The fully resolved config as the tables a config file holds (every default written
    out): ``parse_config(raw_config(c)) == c``, so a changed copy re-validates."""
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["strategy"] = {"name": raw["strategy"].pop("name"), **raw["strategy"]}
    raw["aggregator"].pop("name")  # it is strategy.aggregator
    if not raw["aggregator"]:
        del raw["aggregator"]
    return raw


def dump_config(config: RunConfig) -> str:
    """The fully resolved config as TOML (every default written out)."""
    return tomli_w.dumps(raw_config(config))


def config_sha256(config: RunConfig) -> str:
    return hashlib.sha256(dump_config(config).encode()).hexdigest()
