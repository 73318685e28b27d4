"""Secure aggregation: SecAgg (Bonawitz et al. 2017) and SecAgg+ (Bell et al. 2020).

The coordinator learns the sum of the participants' quantised updates and nothing else.
Both halves of the protocol live here: :func:`~fedswarm.secagg.coordinator.secure_sum` (the
coordinator's generator of four exchanges) and :func:`~fedswarm.secagg.participant.secagg_handlers`
(the participant's handlers); :class:`SecureFitRound` runs it as a fit round of any
FedAvg-family strategy (``run_rounds(..., fit_protocol=SecureFitRound(settings))``).
"""

from fedswarm.secagg.coordinator import Aborted, RoundSetup, SecureSum, secure_sum
from fedswarm.secagg.fit_round import SecureFitRound, SecureSettings
from fedswarm.secagg.graph import GraphChoice, choose_parameters, harary_graph
from fedswarm.secagg.messages import KINDS
from fedswarm.secagg.participant import KeyBinding, SecAggProtocolError, secagg_handlers
from fedswarm.secagg.quantise import Quantiser, UpdateEncoding

__all__ = [
    "KINDS",
    "Aborted",
    "GraphChoice",
    "KeyBinding",
    "Quantiser",
    "RoundSetup",
    "SecAggProtocolError",
    "SecureFitRound",
    "SecureSettings",
    "SecureSum",
    "UpdateEncoding",
    "choose_parameters",
    "harary_graph",
    "secagg_handlers",
    "secure_sum",
]
