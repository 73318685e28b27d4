"""A malicious participant built from an honest one and the ``[attack]`` table."""

from __future__ import annotations

import zlib

import numpy as np

from fedswarm.attacks.config import AttackConfig, BackdoorAttack, LabelFlipAttack
from fedswarm.attacks.data_poisoning import backdoor, flip_labels
from fedswarm.attacks.model_poisoning import PoisonedApp
from fedswarm.client import ClientApp

__all__ = ["malicious_app"]


def malicious_app(app: ClientApp, attack: AttackConfig, num_classes: int, seed: int) -> ClientApp:
    """``app`` with poisoned data and/or a poisoned update, as ``attack`` says; the same
    handlers (so backends batch it like any participant) and the same secrets."""
    data = app.data
    if isinstance(attack, LabelFlipAttack):
        data = flip_labels(data, num_classes)
    elif isinstance(attack, BackdoorAttack):
        rng = np.random.default_rng([seed, zlib.crc32(app.client_id.encode()), 0xBAD])
        data = backdoor(data, attack.target, attack.poison_fraction, attack.trigger, rng)
    return PoisonedApp(app.client_id, app.learner, data, app.handlers, app.secrets, attack)
