"""The ``[attack]`` table: which participants are Byzantine and what they do (a test tool).

``kind`` picks the attack; ``fraction`` (of all participants) or ``count`` says how many are
malicious, chosen from the run seed; each kind has its own options, so an option of another
kind is an unknown key. Kinds: data poisoning (``label_flip``, ``backdoor``), per-participant
model poisoning (``sign_flip``, ``gaussian``, ``scaling``) and colluding model poisoning that
needs the round's benign updates (``alie``, ``ipm``, ``min_max``, ``min_sum``: simulation
only, see :mod:`fedswarm.attacks.colluding`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "ATTACK_BY_KIND",
    "COLLUDING",
    "AlieAttack",
    "AttackConfig",
    "AttackKind",
    "BackdoorAttack",
    "GaussianAttack",
    "IpmAttack",
    "LabelFlipAttack",
    "MinMaxAttack",
    "ScaleAttack",
    "check_attack",
    "malicious_count",
    "parse_attack",
]


class AttackKind(enum.Enum):
    LABEL_FLIP = "label_flip"
    BACKDOOR = "backdoor"
    SIGN_FLIP = "sign_flip"
    GAUSSIAN = "gaussian"
    SCALING = "scaling"
    ALIE = "alie"
    IPM = "ipm"
    MIN_MAX = "min_max"
    MIN_SUM = "min_sum"


COLLUDING = frozenset({AttackKind.ALIE, AttackKind.IPM, AttackKind.MIN_MAX, AttackKind.MIN_SUM})


class _Attack(BaseModel):
    # The same rules as every run.config table (attacks sits below run, so it has its own).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    fraction: float | None = Field(None, gt=0, le=1, description="of all participants")
    count: int | None = Field(None, ge=1, description="instead of fraction")

    @model_validator(mode="before")
    @classmethod
    def _default_fraction(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("fraction") is None and raw.get("count") is None:
            return {**raw, "fraction": 0.2}
        return raw

    @model_validator(mode="after")
    def _one_of_fraction_count(self) -> _Attack:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("set one of attack.fraction and attack.count")
        return self

    @property
    def attack_kind(self) -> AttackKind:
        return AttackKind(getattr(self, "kind"))  # noqa: B009 (each subclass's tag)


class LabelFlipAttack(_Attack):
    """Malicious participants train on labels ``y -> num_classes - 1 - y``."""

    kind: Literal["label_flip"]


class BackdoorAttack(_Attack):
    """A bright ``trigger`` x ``trigger`` patch in the image's corner relabelled ``target``,
    on ``poison_fraction`` of each malicious participant's samples; the update is boosted
    by ``scale`` (Bagdasaryan et al.'s model replacement when ``scale`` ~ n / lr)."""

    kind: Literal["backdoor"]
    target: int = Field(0, ge=0)
    poison_fraction: float = Field(0.5, gt=0, le=1)
    trigger: int = Field(3, ge=1, description="side of the square patch, in pixels")
    scale: float = Field(1.0, gt=0)


class ScaleAttack(_Attack):
    """``sign_flip`` sends ``-scale`` times the honest update; ``scaling`` ``scale`` times."""

    kind: Literal["sign_flip", "scaling"]
    scale: float = Field(4.0, gt=0)


class GaussianAttack(_Attack):
    """Sends noise ``N(0, sigma^2 I)`` instead of an update."""

    kind: Literal["gaussian"]
    sigma: float = Field(1.0, gt=0)


class AlieAttack(_Attack):
    """A little is enough (Baruch et al. 2019): ``mean - z * std`` of the benign updates;
    ``z`` unset: the paper's ``z_max`` for the round's n and malicious count."""

    kind: Literal["alie"]
    z: float | None = Field(None, gt=0)


class IpmAttack(_Attack):
    """Inner-product manipulation (Xie et al. 2019): ``-epsilon`` times the benign mean."""

    kind: Literal["ipm"]
    epsilon: float = Field(0.5, gt=0)


class MinMaxAttack(_Attack):
    """Shejwalkar and Houmansadr 2021 (AGR-agnostic): ``mean - gamma * std`` with the
    largest ``gamma`` keeping the malicious update within the benign updates' largest
    distance (``min_max``) or sum of squared distances (``min_sum``)."""

    kind: Literal["min_max", "min_sum"]
    gamma_init: float = Field(10.0, gt=0, description="start of the search for gamma")
    tol: float = Field(1e-3, gt=0, description="the search stops at this step")


AttackConfig = Annotated[
    LabelFlipAttack
    | BackdoorAttack
    | ScaleAttack
    | GaussianAttack
    | AlieAttack
    | IpmAttack
    | MinMaxAttack,
    Field(discriminator="kind"),
]

ATTACK_BY_KIND: Mapping[str, type[BaseModel]] = {
    "label_flip": LabelFlipAttack,
    "backdoor": BackdoorAttack,
    "sign_flip": ScaleAttack,
    "scaling": ScaleAttack,
    "gaussian": GaussianAttack,
    "alie": AlieAttack,
    "ipm": IpmAttack,
    "min_max": MinMaxAttack,
    "min_sum": MinMaxAttack,
}


def malicious_count(attack: AttackConfig, num_clients: int) -> int:
    """How many of ``num_clients`` participants are malicious (at least one)."""
    if attack.count is not None:
        return attack.count
    assert attack.fraction is not None
    return max(1, round(attack.fraction * num_clients))


def check_attack(attack: AttackConfig, num_clients: int | None) -> None:
    """Raise naming the keys if more participants are malicious than exist."""
    if num_clients is not None and malicious_count(attack, num_clients) > num_clients:
        raise ValueError(f"attack.count = {attack.count} exceeds data.num_clients = {num_clients}")


def parse_attack(table: Mapping[str, Any]) -> AttackConfig:
    """An ``[attack]`` table on its own (``fedswarm client --attack``); errors name the keys."""
    try:
        return TypeAdapter(AttackConfig).validate_json(json.dumps(dict(table)))
    except ValidationError as exc:
        problems = "; ".join(
            f"attack.{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(f"not a valid attack: {problems}") from None
