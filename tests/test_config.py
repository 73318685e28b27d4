"""Run configuration: defaults, round trips, every kind of bad input, and ``build_strategy``.

A config error must name the dotted key and, for an unknown key, list the keys allowed at
that place (the keys of the table the key was found in, not of some other table).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from fedswarm.aggregation import Weighting
from fedswarm.algorithms.fedprox import FedProx
from fedswarm.algorithms.local_sgd import LocalSGD
from fedswarm.algorithms.scaffold import Scaffold
from fedswarm.data.partition import DirichletScheme, Partition, PartitionSpec
from fedswarm.run.build import build, build_strategy, data_spec
from fedswarm.run.config import (
    ClientConfig,
    ConfigError,
    DataConfig,
    EvaluationConfig,
    ModelConfig,
    RunConfig,
    config_sha256,
    dump_config,
    load_config,
    loads_config,
    parse_config,
)
from fedswarm.run.config import FedAvgConfig as FedAvgOptions
from fedswarm.run.config import FedOptConfig as FedOptOptions
from fedswarm.run.config import FedProxConfig as FedProxOptions
from fedswarm.run.config import ScaffoldConfig as ScaffoldOptions
from fedswarm.sampling import UniformSampler
from fedswarm.server_opt import AdaptiveRule, ServerAdaptive, ServerSGD
from fedswarm.training import LocalTraining, OptimizerKind

DEMO_TOML = (files("fedswarm") / "configs" / "demo.toml").read_text()
STRATEGY_NAMES = ("fedavg", "fedavgm", "fedprox", "fedadam", "fedyogi", "fedadagrad", "scaffold")


def config_error(text: str) -> str:
    """The message of the ConfigError that ``text`` must raise."""
    with pytest.raises(ConfigError) as caught:
        loads_config(text, "test.toml")
    return str(caught.value)


# --- defaults and round trips -------------------------------------------------------------


def test_empty_file_gives_the_documented_defaults() -> None:
    config = loads_config("")
    assert config == RunConfig()
    assert (config.seed, config.rounds) == (0, 50)
    assert config.data == DataConfig()
    assert config.model.hidden == (64,)
    assert (config.client.epochs, config.client.steps) == (1, None)
    assert config.client.optimizer is OptimizerKind.SGD
    assert config.strategy == FedAvgOptions()
    assert config.strategy.weighting is Weighting.EXAMPLES
    assert config.evaluation == EvaluationConfig()


def test_demo_config_parses_to_what_it_says() -> None:
    config = loads_config(DEMO_TOML)
    assert (config.seed, config.rounds) == (0, 40)
    assert config.data.name.value == "digits"
    assert config.data.num_clients == 20
    assert config.data.partition is not None
    assert config.data.partition.value == "dirichlet"
    assert config.strategy.name == "fedavg"
    assert (config.evaluation.every, config.evaluation.federated_clients) == (5, 20)


ROUND_TRIP_CASES = {
    "defaults": "",
    "demo": DEMO_TOML,
    "steps": "[client]\nsteps = 7\noptimizer = 'adam'\nmomentum = 0.5\n",
    "fedavgm": "[strategy]\nname = 'fedavgm'\nserver_lr = 0.5\nserver_momentum = 0.7\n",
    "fedprox": "[strategy]\nname = 'fedprox'\nmu = 0.25\nclients_per_round = 3\n",
    "fedyogi": "[strategy]\nname = 'fedyogi'\nbeta1 = 0.5\ntau = 0.01\n",
    "scaffold": "[strategy]\nname = 'scaffold'\nserver_lr = 0.5\nmin_replies = 2\n",
    "shakespeare": "[data]\nname = 'shakespeare'\nmax_samples_per_client = 100\n"
    "[model]\nname = 'lstm'\nhidden = [32]\nembed = 4\nlayers = 1\n",
    "dirichlet-clients": "[data]\npartition = 'dirichlet'\ndirichlet_scheme = 'clients'\n"
    "min_size = 0\n[simulation]\nmax_clients_per_chunk = 64\n",
    "cnn": "[data]\nname = 'fashion_mnist'\nnormalize = true\npartition = 'shards'\n"
    "[model]\nname = 'cnn'\nchannels = [4, 8]\nhidden = [16]\n",
}


@pytest.mark.parametrize("text", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
def test_resolved_config_round_trips(text: str) -> None:
    config = loads_config(text)
    dumped = dump_config(config)
    again = loads_config(dumped)
    assert again == config
    assert config_sha256(again) == config_sha256(config)
    assert dump_config(again) == dumped  # the resolved form is a fixed point


def test_resolved_config_writes_every_default() -> None:
    dumped = dump_config(RunConfig())
    for key in ("seed", "rounds", "batch_size", "weighting", "local_test_fraction", "every"):
        assert re.search(rf"^{key} = ", dumped, re.MULTILINE), key
    assert dumped.index("[strategy]\nname = ") >= 0  # the discriminator comes first


def test_hash_ignores_spelling_but_not_content() -> None:
    explicit = loads_config(
        "seed = 0\n[client]\nlr = 1\nepochs = 1\n[strategy]\nweighting = 'examples'\n"
        "name = 'fedavg'\n"
    )
    implicit = loads_config("[client]\nlr = 1.0\n")
    assert explicit == implicit
    assert config_sha256(explicit) == config_sha256(implicit)
    assert config_sha256(loads_config("seed = 1\n")) != config_sha256(RunConfig())
    prox_a = loads_config("[strategy]\nname = 'fedprox'\nmu = 0.01\n")
    prox_b = loads_config("[strategy]\nname = 'fedprox'\nmu = 0.02\n")
    assert config_sha256(prox_a) != config_sha256(prox_b)


_unit = st.floats(0, 0.99, allow_nan=False)
_positive = st.floats(1e-6, 10, allow_nan=False)
_STRATEGY_OPTIONS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "fedavg": {"weighting": st.sampled_from(["examples", "uniform"])},
    "fedavgm": {"server_lr": _positive, "server_momentum": _unit},
    "fedprox": {"mu": st.floats(0, 10, allow_nan=False)},
    "fedadam": {"server_lr": _positive, "beta1": _unit, "beta2": _unit, "tau": _positive},
    "fedyogi": {"server_lr": _positive, "beta2": _unit},
    "fedadagrad": {"tau": _positive},
    "scaffold": {"server_lr": _positive},
}


@st.composite
def raw_configs(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(STRATEGY_NAMES))
    strategy = draw(
        st.fixed_dictionaries(
            {"name": st.just(name)},
            optional={
                **_STRATEGY_OPTIONS[name],
                "fraction": st.floats(0.01, 1.0),
                "clients_per_round": st.integers(1, 100),
                "min_replies": st.integers(1, 5),
            },
        )
    )
    local = draw(st.sampled_from([{"epochs": 2}, {"steps": 3}, {}]))
    optimizers = ["sgd"] if name == "scaffold" else ["sgd", "adam"]  # SCAFFOLD: plain SGD
    client = {**local, "lr": draw(_positive), "optimizer": draw(st.sampled_from(optimizers))}
    data = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["digits", "fashion_mnist", "synthetic"]),
                "num_clients": st.integers(1, 1000),
                "partition": st.sampled_from(["iid", "dirichlet", "shards", "quantity"]),
                "alpha": _positive,
            },
        )
    )
    model = {"hidden": draw(st.lists(st.integers(1, 512), min_size=1, max_size=3))}
    return {
        "seed": draw(st.integers(0, 2**63 - 1)),
        "rounds": draw(st.integers(1, 10**6)),
        "data": data,
        "model": model,
        "client": client,
        "strategy": strategy,
        "evaluation": {"every": draw(st.integers(1, 50)), "central": draw(st.booleans())},
    }


@settings(max_examples=60, deadline=None)
@given(raw_configs())
def test_any_valid_config_round_trips(raw: dict[str, Any]) -> None:
    config = parse_config(raw)
    again = loads_config(dump_config(config))
    assert again == config
    assert config_sha256(again) == config_sha256(config)


# --- unknown keys ------------------------------------------------------------------------

UNKNOWN_KEYS: list[tuple[str, str, type[BaseModel]]] = [
    ("round = 3\n", "round", RunConfig),
    ("[data]\nnme = 'digits'\n", "data.nme", DataConfig),
    ("[data]\nnum_client = 4\n", "data.num_client", DataConfig),
    ("[model]\nhiden = [8]\n", "model.hiden", ModelConfig),
    ("[client]\nlearning_rate = 0.1\n", "client.learning_rate", ClientConfig),
    ("[strategy]\nname = 'fedavg'\nmu = 0.1\n", "strategy.mu", FedAvgOptions),
    ("[strategy]\nname = 'fedprox'\nserver_lr = 0.1\n", "strategy.server_lr", FedProxOptions),
    ("[strategy]\nname = 'fedadam'\nmomentum = 0.9\n", "strategy.momentum", FedOptOptions),
    ("[strategy]\nname = 'scaffold'\nmu = 0.1\n", "strategy.mu", ScaffoldOptions),
    ("[evaluation]\nevry = 2\n", "evaluation.evry", EvaluationConfig),
]


@pytest.mark.parametrize(
    ("text", "key", "table"), UNKNOWN_KEYS, ids=[key for _, key, _ in UNKNOWN_KEYS]
)
def test_unknown_key_is_named_with_the_keys_allowed_there(
    text: str, key: str, table: type[BaseModel]
) -> None:
    message = config_error(text)
    assert "test.toml" in message
    found = re.search(r"unknown key '([^']+)'; allowed keys here: ([^\n]+)", message)
    assert found is not None, message
    assert found.group(1) == key
    assert found.group(2).split(", ") == sorted(table.model_fields)


def test_every_problem_is_listed_at_once() -> None:
    message = config_error(
        "rounds = 0\n[data]\nnme = 'x'\n[client]\nlr = -1\n[strategy]\nname = 'fedavg'\nmu = 1\n"
    )
    for key in ("rounds:", "'data.nme'", "client.lr:", "'strategy.mu'"):
        assert key in message


def test_unknown_table_named_like_a_strategy_is_named() -> None:
    assert "unknown key 'fedprox'" in config_error("[fedprox]\nmu = 0.01\n")


# --- ill-typed values and bad enum values ----------------------------------------------

ILL_TYPED = [
    ("rounds = 'many'\n", "rounds"),
    ("seed = 1.5\n", "seed"),
    ("seed = -1\n", "seed"),
    ("data = 3\n", "data"),
    ("[data]\nnum_clients = 2.5\n", "data.num_clients"),
    ("[data]\nalpha = 0\n", "data.alpha"),
    ("[data]\nmin_size = -1\n", "data.min_size"),
    ("[simulation]\nmax_clients_per_chunk = 0\n", "simulation.max_clients_per_chunk"),
    ("[model]\nhidden = '64'\n", "model.hidden"),
    ("[model]\nchannels = [1, 2, 3]\n", "model.channels"),
    ("[client]\nlr = 'fast'\n", "client.lr"),
    ("[client]\nbatch_size = 0\n", "client.batch_size"),
    ("[strategy]\nname = 'fedavg'\nfraction = 1.5\n", "strategy.fraction"),
    ("[strategy]\nname = 'fedprox'\nmu = -0.1\n", "strategy.mu"),
    ("[strategy]\nname = 'fedadam'\nbeta2 = 1.0\n", "strategy.beta2"),
    ("[evaluation]\ncentral = 'maybe'\n", "evaluation.central"),
    ("[evaluation]\nevery = 0\n", "evaluation.every"),
]


@pytest.mark.parametrize(("text", "key"), ILL_TYPED, ids=[key for _, key in ILL_TYPED])
def test_ill_typed_value_names_its_key(text: str, key: str) -> None:
    assert re.search(rf"^  - {re.escape(key)}: ", config_error(text), re.MULTILINE)


BAD_ENUMS = [
    ("[data]\nname = 'mnist'\n", "data.name", ["digits", "fashion_mnist", "shakespeare"]),
    ("[data]\npartition = 'pathological'\n", "data.partition", ["iid", "dirichlet", "shards"]),
    ("[data]\ndirichlet_scheme = 'hsu'\n", "data.dirichlet_scheme", ["labels", "clients"]),
    ("[model]\nname = 'resnet'\n", "model.name", ["mlp", "cnn", "lstm", "logreg"]),
    ("[client]\noptimizer = 'rmsprop'\n", "client.optimizer", ["sgd", "adam"]),
    ("[strategy]\nweighting = 'median'\nname = 'fedavg'\n", "strategy.weighting", ["uniform"]),
    ("[strategy]\nname = 'fedsgd'\n", "strategy", list(STRATEGY_NAMES)),
]


@pytest.mark.parametrize(
    ("text", "key", "allowed"), BAD_ENUMS, ids=[key for _, key, _ in BAD_ENUMS]
)
def test_bad_enum_value_lists_the_allowed_values(text: str, key: str, allowed: list[str]) -> None:
    message = config_error(text)
    assert re.search(rf"^  - {re.escape(key)}: ", message, re.MULTILINE), message
    for value in allowed:
        assert f"'{value}'" in message


def test_strategy_table_without_name_means_fedavg() -> None:
    assert loads_config("[strategy]\nfraction = 0.5\n").strategy == FedAvgOptions(fraction=0.5)


@pytest.mark.parametrize(
    "text",
    [
        "rounds = '5'\n",
        "[evaluation]\ncentral = 'yes'\n",
        "[client]\nlr = inf\n",
        "[model]\nhidden = [0]\n",
    ],
    ids=["rounds-as-string", "bool-as-string", "lr-infinite", "hidden-zero-width"],
)
def test_values_that_only_look_valid_are_rejected(text: str) -> None:
    config_error(text)


# --- client.epochs and client.steps ------------------------------------------------------


def test_steps_alone_replaces_the_default_epochs() -> None:
    client = loads_config("[client]\nsteps = 5\n").client
    assert (client.epochs, client.steps) == (None, 5)
    training = build_strategy(loads_config("[client]\nsteps = 5\n")).training
    assert (training.epochs, training.steps) == (None, 5)


def test_epochs_and_steps_together_are_refused() -> None:
    message = config_error("[client]\nepochs = 2\nsteps = 5\n")
    assert "client.epochs" in message
    assert "client.steps" in message


# --- files -------------------------------------------------------------------------------


def test_invalid_toml_is_a_config_error() -> None:
    message = config_error("rounds = \n[data\n")
    assert "test.toml is not valid TOML" in message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "run.toml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("seed = 3\n[data]\nnme = 1\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path} is not a valid")):
        load_config(path)
    path.write_text(DEMO_TOML.replace("seed = 0", "seed = 3"))
    assert load_config(path) == loads_config(DEMO_TOML).model_copy(update={"seed": 3})


@pytest.mark.parametrize("kind", ["directory", "latin-1"])
def test_unreadable_config_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "run.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"seed = 1  # caf\xe9\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


# --- build_strategy ----------------------------------------------------------------------


def strategy_for(table: str, client: str = "") -> Any:
    return build_strategy(loads_config(f"[client]\n{client}\n[strategy]\n{table}\n"))


def test_build_strategy_passes_training_and_sampling() -> None:
    strategy = strategy_for(
        "name = 'fedavg'\nfraction = 0.25\nmin_clients = 3\nclients_per_round = 7\n"
        "weighting = 'uniform'\n",
        "steps = 4\nbatch_size = 16\nlr = 0.125\noptimizer = 'adam'\nmomentum = 0.5\n"
        "weight_decay = 0.001\n",
    )
    assert strategy.training == LocalTraining(
        batch_size=16,
        lr=0.125,
        epochs=None,
        steps=4,
        optimizer=OptimizerKind.ADAM,
        momentum=0.5,
        weight_decay=0.001,
    )
    assert strategy.sampler == UniformSampler(0.25, 3, 7)
    assert strategy.weighting is Weighting.UNIFORM


def test_build_fedavg() -> None:
    strategy = strategy_for("name = 'fedavg'")
    assert strategy.client_update == LocalSGD()
    assert strategy.server_optimizer == ServerSGD(lr=1.0, momentum=0.0)
    assert strategy.weighting is Weighting.EXAMPLES


def test_build_fedavgm() -> None:
    strategy = strategy_for("name = 'fedavgm'\nserver_lr = 0.5\nserver_momentum = 0.75")
    assert strategy.client_update == LocalSGD()
    assert strategy.server_optimizer == ServerSGD(lr=0.5, momentum=0.75)


def test_build_fedprox() -> None:
    strategy = strategy_for("name = 'fedprox'\nmu = 0.25")
    assert strategy.client_update == FedProx(0.25)
    assert strategy.server_optimizer == ServerSGD(lr=1.0)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("fedadam", AdaptiveRule.ADAM),
        ("fedyogi", AdaptiveRule.YOGI),
        ("fedadagrad", AdaptiveRule.ADAGRAD),
    ],
)
def test_build_adaptive_server_optimisers(name: str, rule: AdaptiveRule) -> None:
    strategy = strategy_for(
        f"name = '{name}'\nserver_lr = 0.03\nbeta1 = 0.5\nbeta2 = 0.75\ntau = 0.5"
    )
    assert strategy.client_update == LocalSGD()
    assert strategy.server_optimizer == ServerAdaptive(
        rule, lr=0.03, beta1=0.5, beta2=0.75, tau=0.5
    )
    defaults = strategy_for(f"name = '{name}'").server_optimizer
    assert defaults == ServerAdaptive(rule, lr=0.01, beta1=0.9, beta2=0.99, tau=1e-3)


def test_build_scaffold() -> None:
    strategy = strategy_for("name = 'scaffold'\nserver_lr = 0.5")
    assert isinstance(strategy.client_update, Scaffold)
    assert strategy.server_optimizer == ServerSGD(lr=0.5)
    assert set(strategy.client_update.init(3)) == {"control"}  # the server's c
    assert strategy.weighting is Weighting.UNIFORM  # as the paper and the scaffold() preset


# --- data_spec and the simulation learner --------------------------------------------------


def test_dirichlet_options_reach_the_partition_spec() -> None:
    config = loads_config(
        "[data]\npartition = 'dirichlet'\nalpha = 0.3\ndirichlet_scheme = 'clients'\nmin_size = 1\n"
    )
    assert data_spec(config.data, 0).partition == PartitionSpec(
        Partition.DIRICHLET, alpha=0.3, min_size=1, dirichlet_scheme=DirichletScheme.CLIENTS
    )


def test_many_tiny_dirichlet_clients_build_with_the_clients_scheme() -> None:
    """700 digits clients of 2 training images: label-wise Dirichlet(0.3) cannot draw it."""
    data: dict[str, Any] = {"num_clients": 700, "partition": "dirichlet", "alpha": 0.3}
    data.update(local_test_fraction=0.0, min_size=2)
    with pytest.raises(ValueError, match="no draw in"):
        build(parse_config({"data": data}))
    exp = build(parse_config({"data": {**data, "dirichlet_scheme": "clients"}}))
    sizes = {len(exp.dataset.client(c).train) for c in exp.dataset.client_ids()}
    assert sizes == {2, 3}  # 1,437 training images: 37 clients get a third


def test_max_clients_per_chunk_reaches_the_vectorized_learner() -> None:
    config = loads_config("[data]\nnum_clients = 3\n[simulation]\nmax_clients_per_chunk = 7\n")
    exp = build(config)
    learner = exp.clients(exp.dataset.client_ids()[0]).learner
    assert getattr(learner, "max_clients_per_chunk", None) == 7
