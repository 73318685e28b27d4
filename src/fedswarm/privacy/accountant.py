"""What a private run has spent: the events it executed, and their (epsilon, delta).

The run keeps a :class:`Ledger` of the releases it made (a Poisson-subsampled Gaussian per
round, an adaptive-clipping count query, a participant's local Gaussian), run-length encoded
as ``(sampling_rate, noise_multiplier, count)`` rows, and dp-accounting turns it into an
epsilon at the configured delta with the named accountant (RDP or PLD). The ledger is plain
arrays, so it rides in the checkpoint (``ServerState.wrapper``) and a resumed run composes
exactly the events an uninterrupted one would have. The privacy math is dp-accounting's;
nothing here re-derives it.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import dp_accounting
import numpy as np
from dp_accounting import pld, rdp
from dp_accounting.mechanism_calibration import BracketInterval

__all__ = ["AccountantKind", "Event", "Ledger", "calibrate_noise", "epsilon", "to_dp_event"]


class AccountantKind(enum.Enum):
    RDP = "rdp"  # Renyi DP (Mironov 2017), the moments accountant's successor: fast, looser
    PLD = "pld"  # privacy loss distributions (Koskela et al.; Google's): tight, slower


@dataclass(frozen=True)
class Event:
    """One release: a Gaussian of ``noise_multiplier`` (noise std / sensitivity) on a
    Poisson sample of rate ``sampling_rate`` (1: everyone, no amplification)."""

    sampling_rate: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"sampling_rate must be in (0, 1], got {self.sampling_rate}")
        if not self.noise_multiplier >= 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")


@dataclass(frozen=True, eq=False)
class Ledger:
    """The executed events, in order, as ``(k, 3)`` float64 rows ``(q, z, count)``."""

    rows: np.ndarray

    @classmethod
    def empty(cls) -> Ledger:
        return cls(np.zeros((0, 3), np.float64))

    @classmethod
    def from_array(cls, rows: np.ndarray, where: str) -> Ledger:
        """A ledger read back from a checkpoint; ``where`` names it in errors."""
        if rows.ndim != 2 or rows.shape[1] != 3 or not np.all(np.isfinite(rows)):
            raise ValueError(f"{where}: a privacy ledger is (k, 3) finite rows, got {rows.shape}")
        return cls(rows.astype(np.float64))

    def record(self, events: Sequence[Event]) -> Ledger:
        """A new ledger with ``events`` appended (a repeat of the last row adds to its count)."""
        rows = [tuple(r) for r in self.rows.tolist()]
        for e in events:
            if rows and rows[-1][:2] == (e.sampling_rate, e.noise_multiplier):
                rows[-1] = (*rows[-1][:2], rows[-1][2] + 1)
            else:
                rows.append((e.sampling_rate, e.noise_multiplier, 1.0))
        return Ledger(np.array(rows, np.float64).reshape(-1, 3))

    def composed(self) -> list[tuple[Event, int]]:
        return [(Event(q, z), int(n)) for q, z, n in self.rows.tolist()]

    @property
    def num_events(self) -> int:
        return int(self.rows[:, 2].sum())


def to_dp_event(event: Event) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(event.noise_multiplier)
    if event.sampling_rate == 1:
        return gaussian
    return dp_accounting.PoissonSampledDpEvent(event.sampling_rate, gaussian)


def _accountant(kind: AccountantKind) -> dp_accounting.PrivacyAccountant:
    if kind is AccountantKind.RDP:
        return rdp.RdpAccountant()
    return pld.PLDAccountant()


def epsilon(ledger: Ledger, delta: float, kind: AccountantKind) -> float:
    """The epsilon at ``delta`` of every event in ``ledger`` composed (0 with none; inf if
    any event had no noise)."""
    return _epsilon(tuple(map(tuple, ledger.rows.tolist())), delta, kind)


# A PLD takes about half a second to build whatever the number of rounds, and a budgeted
# run asks for each ledger twice (the next round's check, then that round's report).
@functools.lru_cache(maxsize=64)
def _epsilon(rows: tuple[tuple[float, ...], ...], delta: float, kind: AccountantKind) -> float:
    composed = Ledger(np.array(rows, np.float64).reshape(-1, 3)).composed()
    if any(e.noise_multiplier == 0 for e, _ in composed):
        return math.inf
    accountant = _accountant(kind)
    for event, count in composed:
        accountant.compose(to_dp_event(event), count)
    return float(accountant.get_epsilon(delta))


def calibrate_noise(
    target_epsilon: float, delta: float, sampling_rate: float, rounds: int, kind: AccountantKind
) -> float:
    """The smallest noise multiplier whose ``rounds`` Poisson-subsampled Gaussian rounds at
    rate ``sampling_rate`` spend at most ``target_epsilon`` at ``delta`` (within 1e-4), like
    Opacus's ``get_noise_multiplier``; by dp-accounting's bracketed search."""
    if not target_epsilon > 0 or not 0 < delta < 1 or rounds < 1:
        raise ValueError("need target_epsilon > 0, 0 < delta < 1 and rounds >= 1")

    def rounds_of(z: float) -> dp_accounting.DpEvent:
        return dp_accounting.SelfComposedDpEvent(to_dp_event(Event(sampling_rate, z)), rounds)

    def search(kind: AccountantKind, bracket: BracketInterval) -> float:
        return float(
            dp_accounting.calibrate_dp_mechanism(
                lambda: _accountant(kind), rounds_of, target_epsilon, delta, bracket, tol=1e-4
            )
        )

    z = search(AccountantKind.RDP, dp_accounting.LowerEndpointAndGuess(1e-3, 1.0))
    if kind is AccountantKind.PLD:
        # PLD is tighter (needs no more noise than RDP) but a PLD of tiny noise is huge
        # (tens of GiB at z = 1e-3): search below RDP's answer only.
        z = search(kind, dp_accounting.ExplicitBracketInterval(0.3 * z, z + 1e-4))
    return float(z) + 1e-4  # the search's answer may sit just below the optimum
