"""Many clients' local training at once: one ``vmap`` over stacked parameters per step.

:class:`VectorizedTorchLearner` returns, for every client, the :class:`LocalFit` that
:class:`~fedswarm.pytorch.learner.TorchLearner` would (same batch order, same optimiser
maths, equal up to float rounding), but runs the K clients' mini-batch steps as one
batched computation: ``vmap(grad_and_value(loss))`` over a ``(K, dim)`` parameter matrix.

Clients of unequal size take different numbers of steps and have smaller last batches.
Every step pads each client's batch to the widest batch of that step (at most
``batch_size``) and weights per-sample losses by a 0/1 mask, so each gradient is the mean
over real samples only. A client with no batch at a step (finished, or without data) is
frozen by a per-client gate: its parameters and optimiser state stay bit-identical.

Assumptions, as for any padded batching: a sample's logits do not depend on the other
samples of its batch, and which parameters receive a gradient does not depend on the data.

Peak memory for a chunk of K clients, D parameters and batch size B: roughly
``(6 + 2s) * K * D`` float32 values (parameters, per-tensor and flat gradients, corrected
gradient, candidate and gated parameters, old and new optimiser state with ``s`` = 0 for
plain SGD, 1 with momentum, 2 for Adam), plus ``K * D`` for SCAFFOLD shifts, a copy of the
chunk's training data, and one step's ``K x B`` samples with their activations.
``max_clients_per_chunk`` bounds K. By default, on the CPU, K is chosen so that a
``(K, D)`` matrix holds about ``CHUNK_FLOATS`` values (16 MiB); on a GPU, so that the chunk's
estimated working set (the terms above, with activations counted from one sample's forward
pass) fills half of the memory free there. Small chunks are faster on the CPU: a step
allocates several ``(K, D)`` matrices, and the allocator reuses blocks of this size where
it returns larger ones to the system and page-faults them in afresh at every step (1,000
clients of a 54,314-parameter CNN train about 1.6x faster in chunks of 77 than at once).

The first step of every client starts from the same global parameters, so it runs with
one unbatched copy of them (``vmap`` with ``in_dims=None``): layers then see an ordinary
batch of all clients' samples, and only the weight gradients are computed per client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from fedswarm.data.arrays import ArrayDataset
from fedswarm.params import Params, ParamSpec
from fedswarm.pytorch._batches import step_batches
from fedswarm.pytorch._stacked import corrector, gated, init_state, optimizer_step
from fedswarm.pytorch.device import (
    DeviceData,
    activation_floats,
    autocast,
    chunk_clients,
    client_bytes,
    free_cuda_bytes,
)
from fedswarm.pytorch.learner import LossFn, TorchLearner, _Workspaces
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining, Precision

__all__ = ["CHUNK_FLOATS", "NotVectorizable", "VectorizedTorchLearner", "vectorizable"]

CHUNK_FLOATS = 1 << 22  # default chunk: clients whose stacked parameters fill 16 MiB

StepFn = Callable[..., tuple[dict[str, torch.Tensor], torch.Tensor]]  # grads, losses

_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


class NotVectorizable(Exception):  # noqa: N818 -- named for what it says, like StopIteration
    """The model cannot be trained exactly under ``vmap``; use the sequential learner."""


def vectorizable(model_fn: Callable[[], nn.Module]) -> str | None:
    """Why :class:`VectorizedTorchLearner` cannot train ``model_fn()``'s model, or None.

    Static checks of the module tree; random operations called functionally in
    ``forward`` (e.g. ``F.dropout``) are only caught by ``fit_many``, as NotVectorizable.
    """
    return _unvectorizable_reason(model_fn())


def _unvectorizable_reason(model: nn.Module) -> str | None:
    names = tuple(model.state_dict())
    all_params = dict(model.named_parameters(remove_duplicate=False))
    buffers = [n for n in names if n not in all_params]
    if buffers:
        return (
            f"it has buffers {buffers[:3]} that forward may update in place (e.g. BatchNorm "
            "running statistics), and vmapped clients would share them"
        )
    if tuple(all_params) != names or len(dict(model.named_parameters())) != len(names):
        return "it shares one parameter under several names (tied weights)"
    for name, p in all_params.items():
        if p.dtype != torch.float32:
            return f"parameter {name!r} is {p.dtype}, not float32"
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, _DROPOUT) and module.p > 0:
            return f"module {name!r} ({kind}) draws random numbers (dropout) in forward"
        if isinstance(module, nn.RNNBase):
            return (
                f"module {name!r} ({kind}) has no vmap batching rule (aten::mkldnn_rnn_layer): "
                "vmap falls back to a per-client loop with a performance warning"
            )
    return None


@dataclass(frozen=True)
class VectorizedTorchLearner:
    """A drop-in :class:`~fedswarm.learner.Learner` whose ``fit_many`` trains K clients at once.

    ``loss_fn`` takes ``(logits, targets)`` and returns the batch-mean of per-sample
    losses (like ``F.cross_entropy``); it is applied to one sample at a time under ``vmap``.
    ``max_clients_per_chunk``: clients trained at once (None: chosen for ``device``, see
    the module docstring). Off the CPU, a dataset is copied to ``device`` on first use and
    kept there while it lives.
    """

    model_fn: Callable[[], nn.Module]
    loss_fn: LossFn = F.cross_entropy
    eval_batch_size: int = 2048
    max_clients_per_chunk: int | None = None
    device: str = "cpu"
    _workspaces: _Workspaces = field(
        default_factory=_Workspaces, init=False, repr=False, compare=False
    )
    _data: DeviceData = field(default_factory=DeviceData, init=False, repr=False, compare=False)
    # Per parameter layout (they depend on the model, not on the data): _trained_mask, and
    # the activations of one sample's forward pass (for GPU chunk sizes).
    _trained: dict[ParamSpec, torch.Tensor | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _activations: dict[ParamSpec, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.max_clients_per_chunk is not None and self.max_clients_per_chunk < 1:
            raise ValueError(
                f"max_clients_per_chunk must be at least 1, got {self.max_clients_per_chunk}"
            )

    @cached_property
    def sequential(self) -> TorchLearner:
        """The one-client-at-a-time learner with the same model, loss and device (one per
        learner, so its model is reused across evaluations)."""
        return TorchLearner(self.model_fn, self.loss_fn, self.eval_batch_size, self.device)

    @cached_property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def init_params(self, seed: int) -> Params:
        return self.sequential.init_params(seed)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return self.sequential.evaluate(params, data)

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        return self.fit_many(params, [data], training, [correction], [seed])[0]

    def fit_many(
        self,
        params: Params,
        datasets: Sequence[ArrayDataset],
        training: LocalTraining,
        corrections: Sequence[GradientCorrection],
        seeds: Sequence[int],
    ) -> list[LocalFit]:
        """Client k's result equals ``TorchLearner.fit(params, datasets[k], training,
        corrections[k], seeds[k])`` up to float rounding."""
        if not len(datasets) == len(corrections) == len(seeds):
            raise ValueError(
                f"need one correction and one seed per dataset, got {len(datasets)} datasets, "
                f"{len(corrections)} corrections and {len(seeds)} seeds"
            )
        if self._why_not is not None:
            raise NotVectorizable(self._why_not)
        # The one-client learner's model, reused: a template for functional_call, holding
        # ``params`` (names and shapes checked) for the probe of _trained_mask.
        model = self._workspaces.get(self.model_fn, self.torch_device).load(params, train=True)
        _check_clients(datasets, params.dim, corrections)
        trained = self._trained_entries(model, params.spec, datasets)
        size = self._chunk_size(model, params, datasets, training, corrections)
        fits: list[LocalFit] = []
        for lo in range(0, len(datasets), size):
            chunk = slice(lo, lo + size)
            fits += self._fit_chunk(
                model, params, datasets[chunk], training, corrections[chunk], seeds[chunk], trained
            )
        return fits

    def _chunk_size(
        self,
        model: nn.Module,
        params: Params,
        datasets: Sequence[ArrayDataset],
        training: LocalTraining,
        corrections: Sequence[GradientCorrection],
    ) -> int:
        """Clients a chunk holds: as configured; on the CPU, ``(K, D)`` matrices of
        ``CHUNK_FLOATS`` values; on a GPU, what half of its free memory holds."""
        if self.max_clients_per_chunk is not None:
            return self.max_clients_per_chunk
        device = self.torch_device
        if device.type != "cuda":
            return max(1, CHUNK_FLOATS // max(params.dim, 1))
        sample = next((d for d in datasets if len(d)), None)
        if sample is None:
            return max(1, len(datasets))  # nothing to train: one chunk
        if params.spec not in self._activations:
            x1 = torch.from_numpy(sample.x[:1]).to(device)
            self._activations[params.spec] = activation_floats(model, x1)
        matrices = 8 + 2 * len(init_state(training, torch.zeros(0)))
        matrices += any(c.shift is not None for c in corrections)
        per_client = client_bytes(
            params.dim, matrices, training.batch_size, self._activations[params.spec], datasets
        )
        return chunk_clients(free_cuda_bytes(device), per_client)

    def _trained_entries(
        self, model: nn.Module, spec: ParamSpec, datasets: Sequence[ArrayDataset]
    ) -> torch.Tensor | None:
        """(D,) bool of the entries training updates; None: all (or no client has data)."""
        if spec in self._trained:
            return self._trained[spec]
        data = next((d for d in datasets if len(d)), None)
        if data is None:
            return None  # nothing to probe with; and nothing will be trained
        self._trained[spec] = _trained_mask(model, self.loss_fn, data)
        return self._trained[spec]

    @cached_property
    def _why_not(self) -> str | None:
        """Why the model cannot be vectorised (checked once per learner), or None."""
        model = self.model_fn()
        reason = _unvectorizable_reason(model)
        return None if reason is None else f"{type(model).__name__} cannot be vectorised: {reason}"

    def _fit_chunk(
        self,
        model: nn.Module,
        params: Params,
        datasets: Sequence[ArrayDataset],
        training: LocalTraining,
        corrections: Sequence[GradientCorrection],
        seeds: Sequence[int],
        trained: torch.Tensor | None,
    ) -> list[LocalFit]:
        device = self.torch_device
        start = torch.from_numpy(params.flat.copy()).to(device)  # (D,)
        w = start.expand(len(datasets), -1).clone()  # (K, D)
        state = init_state(training, w)
        correct = corrector(start, corrections)
        loss = grad_and_value(_masked_loss(model, self.loss_fn, training.precision, device))
        shared_fn: StepFn = vmap(loss, in_dims=(None, 0, 0, 0))  # one (D,) for all clients
        step_fn: StepFn = vmap(loss)  # a (K, D) row per client
        loss_sum = torch.zeros(len(datasets), dtype=torch.float64, device=device)
        steps = torch.zeros(len(datasets), dtype=torch.int64, device=device)
        batches = step_batches(datasets, training, seeds, device, self._data)
        for t, (x, y, mask, active, full) in enumerate(batches, 1):
            # Step 1: every row of w is still ``start``.
            at, fn = (start, shared_fn) if t == 1 else (w, step_fn)
            grads, losses = _grads(fn, params.spec, at, x, y, mask)  # (K, D), (K,)
            new_w, new_state = optimizer_step(w, correct(w, grads), state, t, training)
            w, state = gated(active, full, trained, (new_w, *new_state), (w, *state))
            loss_sum += torch.where(active, losses.double(), 0.0)
            steps += active
        rows = w.cpu().numpy()  # a fresh (K, D) matrix: each client's result is a row, not a copy
        return [
            LocalFit(rows[k], len(d), int(n), float(s / n) if n else 0.0)
            for k, (d, n, s) in enumerate(zip(datasets, steps.cpu(), loss_sum.cpu(), strict=True))
        ]


def _check_clients(
    datasets: Sequence[ArrayDataset], dim: int, corrections: Sequence[GradientCorrection]
) -> None:
    for k, (d, c) in enumerate(zip(datasets, corrections, strict=True)):
        first = datasets[0].x  # every client's samples must stack with client 0's
        if d.x.shape[1:] != first.shape[1:] or d.x.dtype != first.dtype:
            raise ValueError(
                f"client {k}'s samples are {d.x.dtype} {d.x.shape[1:]}, "
                f"client 0's are {first.dtype} {first.shape[1:]}"
            )
        if c.shift is not None and c.shift.shape != (dim,):
            raise ValueError(f"client {k}'s shift has shape {c.shift.shape}, expected ({dim},)")


def _masked_loss(
    model: nn.Module, loss_fn: LossFn, precision: Precision, device: torch.device
) -> Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """One client's loss: the mean of per-sample losses over the real (mask 1) samples,
    forward pass and per-sample losses in ``precision``, the mean in float32."""

    def per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits[None], target[None])  # (C,), () -> ()

    # The default loss has per-sample values built in, without a nested vmap's overhead.
    per_samples: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
        partial(F.cross_entropy, reduction="none")
        if loss_fn is F.cross_entropy
        else vmap(per_sample)
    )

    def loss(
        tensors: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        # x (W, ...), y (W,), mask (W,): one client's padded batch
        with autocast(precision, device):
            logits = functional_call(model, tensors, (x,))
            losses = per_samples(logits, y).float()  # (W,)
        return (losses * mask).sum() / mask.sum().clamp(min=1.0)

    return loss


def _grads(
    step_fn: StepFn,
    spec: ParamSpec,
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (K, D) and losses (K,) of every client's masked loss at ``w``: (K, D) for
    ``vmap(loss)``, or (D,), one point for all clients, for ``vmap(loss, in_dims=None...)``."""
    bounds = zip(spec.tensors, spec.offsets[:-1], spec.offsets[1:], strict=True)
    lead = w.shape[:-1]  # (K,) or ()
    # Differentiate per named tensor, not through slices of w: the backward of each
    # slice would fill and add a whole (K, D) matrix.
    tensors = {t.name: w[..., lo:hi].view(*lead, *t.shape) for t, lo, hi in bounds}
    try:
        grads, losses = step_fn(tensors, x, y, mask)
    except RuntimeError as exc:
        if "random" not in str(exc):
            raise
        raise NotVectorizable(
            "the model calls a random operation in forward (e.g. F.dropout), which vmap "
            "cannot reproduce client by client"
        ) from exc
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], dim=1), losses


def _trained_mask(model: nn.Module, loss_fn: LossFn, data: ArrayDataset) -> torch.Tensor | None:
    """(D,) bool: entries of parameters that get a gradient on a sample of ``data``, which
    are all the sequential optimiser updates (frozen or unused parameters keep
    ``grad=None`` and are skipped). None when that is every entry."""
    params = list(model.parameters())
    wanted = [p for p in params if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    x, y = torch.from_numpy(data.x[:1]).to(device), torch.from_numpy(data.y[:1]).to(device)
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, wanted, allow_unused=True)
    has_grad = {id(p) for p, g in zip(wanted, grads, strict=True) if g is not None}
    if len(has_grad) == len(params):
        return None
    return torch.cat([torch.full((p.numel(),), id(p) in has_grad) for p in params]).to(device)
