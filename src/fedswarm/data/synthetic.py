"""FedProx's Synthetic(alpha, beta) generator (Li et al. 2020, MLSys, Sec. 5.1).

Each client k draws its own softmax-regression model and its own input distribution:

    u_k ~ N(0, alpha),   W_k ~ N(u_k, 1) (10 x 60),   b_k ~ N(u_k, 1) (10,)
    B_k ~ N(0, beta),    v_k ~ N(B_k, 1) (60,),       x ~ N(v_k, Sigma), Sigma_jj = j^-1.2
    y = argmax(softmax(W_k x + b_k))

so ``alpha`` controls how much the clients' models differ and ``beta`` how much their inputs
differ. Note that u_k is added to every entry of W_k and b_k, i.e. the same amount to every
logit: ``alpha`` changes the models' weights but never the labels they assign (the label skew
between clients comes from the unit-variance noise on W_k, b_k and from ``beta``).

As in the FedProx reference code, ``alpha`` and ``beta`` are used as standard deviations and
client sizes are ``floor(lognormal(4, 2)) + 50``. ``alpha = beta = 0`` is *not* the paper's
Synthetic-IID (which shares one W, b across clients); it is simply the generator at zero
heterogeneity of the means.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fedswarm.data.arrays import ArrayDataset, ClientData, concat
from fedswarm.data.splits import check_seed, client_id, client_rng, random_local_split

__all__ = [
    "CENTRAL_CLIENTS",
    "NUM_CLASSES",
    "NUM_FEATURES",
    "SyntheticDataset",
    "generate_client",
    "load_synthetic",
]

NUM_FEATURES = 60
NUM_CLASSES = 10
CENTRAL_CLIENTS = 200  # clients whose local tests form the central test set
_STD_X = np.arange(1, NUM_FEATURES + 1, dtype=np.float64) ** (-1.2 / 2)  # sqrt(Sigma_jj)


def generate_client(
    rng: np.random.Generator, alpha: float, beta: float, max_samples: int | None
) -> ArrayDataset:
    """One client's samples: x float32 (n, 60), y int64 (n,)."""
    n = int(rng.lognormal(4.0, 2.0)) + 50
    n = n if max_samples is None else min(n, max_samples)
    u = rng.normal(0.0, alpha)
    w = rng.normal(u, 1.0, (NUM_CLASSES, NUM_FEATURES))
    b = rng.normal(u, 1.0, NUM_CLASSES)
    v = rng.normal(rng.normal(0.0, beta), 1.0, NUM_FEATURES)
    x = v + _STD_X * rng.standard_normal((n, NUM_FEATURES))  # diagonal Sigma: scale per axis
    y = np.argmax(x @ w.T + b, axis=1)  # softmax is monotone, so argmax of the logits
    return ArrayDataset(x.astype(np.float32), y.astype(np.int64))


def load_synthetic(
    *,
    num_clients: int = 30,
    alpha: float = 1.0,
    beta: float = 1.0,
    seed: int = 0,
    local_test_fraction: float = 0.2,
    max_samples_per_client: int | None = None,
) -> SyntheticDataset:
    """``num_clients`` clients ``"00000"``, ..., generated lazily (see :class:`SyntheticDataset`).

    Client k is generated from the seed ``(seed, k)`` alone, so the first clients are the same
    whatever ``num_clients`` is. ``max_samples_per_client`` caps the heavy lognormal tail.
    """
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
    if max_samples_per_client is not None and max_samples_per_client < 1:
        raise ValueError(
            f"max_samples_per_client must be None or >= 1, got {max_samples_per_client}"
        )
    check_seed(seed)
    return SyntheticDataset(
        num_clients, alpha, beta, seed, local_test_fraction, max_samples_per_client
    )


@dataclass(frozen=True)
class SyntheticDataset:
    """Synthetic(alpha, beta) clients generated on demand: a federation of 100,000 clients
    costs nothing until a client is sampled (only its own samples are then made).

    The central test set is the union of the local tests of the first
    :data:`CENTRAL_CLIENTS` clients (all of them in smaller federations).
    """

    num_clients: int
    alpha: float
    beta: float
    seed: int
    local_test_fraction: float
    max_samples_per_client: int | None

    @property
    def name(self) -> str:
        return "synthetic"

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (NUM_FEATURES,)

    @cached_property
    def central_test(self) -> ArrayDataset:
        first = range(min(self.num_clients, CENTRAL_CLIENTS))
        return concat([self._client(k).test for k in first])

    def client_ids(self) -> tuple[str, ...]:
        return tuple(client_id(k, self.num_clients) for k in range(self.num_clients))

    def client(self, cid: str) -> ClientData:
        k = int(cid) if cid.isdigit() else -1
        if not 0 <= k < self.num_clients or cid != client_id(k, self.num_clients):
            raise KeyError(
                f"unknown client id {cid!r}: synthetic has {self.num_clients} clients, "
                f"{client_id(0, self.num_clients)!r} to "
                f"{client_id(self.num_clients - 1, self.num_clients)!r}"
            )
        return self._client(k)

    def _client(self, k: int) -> ClientData:
        rng = client_rng(self.seed, k)
        data = generate_client(rng, self.alpha, self.beta, self.max_samples_per_client)
        train, test = random_local_split(len(data), self.local_test_fraction, rng)
        return ClientData(data.subset(train), data.subset(test))
