"""Model poisoning by one participant: what it sends instead of its honest update.

A malicious participant is a :class:`PoisonedApp`, a :class:`~fedswarm.client.ClientApp`
whose :meth:`complete_fit` (the stage after local training) replaces the update. Every
backend finishes a fit through that method, the vectorised one included (it trains the
batch, then calls each participant's ``complete_fit``), and the fit handler stays the
built-in one, so malicious participants are batched like honest ones and the attack cannot
be bypassed by batched training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedswarm.attacks.config import (
    AttackConfig,
    AttackKind,
    BackdoorAttack,
    GaussianAttack,
    ScaleAttack,
)
from fedswarm.client import ClientApp
from fedswarm.messages import ClientMemory, FitIns, FitRes
from fedswarm.training import LocalFit

__all__ = ["PoisonedApp", "poison_update"]


def poison_update(update: np.ndarray, attack: AttackConfig, rng: np.random.Generator) -> np.ndarray:
    """The update a participant running ``attack`` sends in place of ``update``."""
    kind = attack.attack_kind
    if isinstance(attack, ScaleAttack):
        sign = -1.0 if kind is AttackKind.SIGN_FLIP else 1.0
        return (update.astype(np.float64) * (sign * attack.scale)).astype(np.float32)
    if isinstance(attack, GaussianAttack):
        return rng.normal(0.0, attack.sigma, update.shape).astype(np.float32)
    if isinstance(attack, BackdoorAttack) and attack.scale != 1.0:
        return (update.astype(np.float64) * attack.scale).astype(np.float32)
    return update  # data poisoning sends what it trained; colluders are replaced later


@dataclass(frozen=True)
class PoisonedApp(ClientApp):
    """A malicious participant (SIMULATION and test tool): honest training on its (possibly
    poisoned) data, then :func:`poison_update`. Randomness from its own secrets."""

    attack: AttackConfig | None = None

    def complete_fit(
        self, ins: FitIns, memory: ClientMemory, fit: LocalFit
    ) -> tuple[FitRes, ClientMemory]:
        res, memory = super().complete_fit(ins, memory, fit)
        if self.attack is None:
            return res, memory
        rng = self.secrets.generator(ins.round, "attack")
        return replace(res, update=poison_update(res.update, self.attack, rng)), memory
