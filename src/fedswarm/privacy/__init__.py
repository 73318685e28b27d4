"""Differential privacy: DP-FedAvg (central and local, fixed and adaptive clipping) as a
strategy wrapper, and a dp-accounting accountant (RDP, PLD) over the events a run executed.

Config: ``[privacy]`` (:mod:`fedswarm.privacy.config`) with ``[strategy] sampling =
"poisson"``; the run reports ``privacy/epsilon`` every round and ``"privacy"`` in
``summary.json``.
"""

from fedswarm.privacy.accountant import AccountantKind, Event, Ledger, calibrate_noise, epsilon
from fedswarm.privacy.dpfedavg import AdaptiveClipping, DPFedAvg, Mechanism, PrivacyError
from fedswarm.privacy.mechanisms import GaussianNoise

__all__ = [
    "AccountantKind",
    "AdaptiveClipping",
    "DPFedAvg",
    "Event",
    "GaussianNoise",
    "Ledger",
    "Mechanism",
    "PrivacyError",
    "calibrate_noise",
    "epsilon",
]
