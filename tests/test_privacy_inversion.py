"""Gradient inversion recovers a digit from one participant's raw (or merely clipped)
update, and does not from the same update under local DP's default noise (z = 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from fedswarm.privacy import GaussianNoise
from fedswarm.privacy.inversion import invert_update, local_update, psnr
from fedswarm.transforms import ClipNorm, TransformRandomness, apply_transforms

RECOGNISABLE_DB, FAILED_DB = 18.0, 12.0


def test_psnr_pairs_each_original_with_its_best_reconstruction() -> None:
    a = np.stack([np.zeros((2, 2)), np.ones((2, 2))])
    result = psnr(a, a[::-1] * 0.9 + 0.05)  # swapped and slightly off
    np.testing.assert_allclose(result.images, a * 0.9 + 0.05)
    np.testing.assert_allclose(result.psnr, 10 * np.log10(1 / 0.05**2))


@pytest.mark.slow
def test_inversion_succeeds_without_defence_and_fails_under_local_dp() -> None:
    torch.set_num_threads(1)
    digits = load_digits()
    x = torch.tensor(digits.images[:1] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:1])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10))
    update = local_update(net, x, y, lr=0.1).numpy()
    rng = TransformRandomness(0, np.random.default_rng(1))
    views = {
        "none": update,
        "clip": apply_transforms((ClipNorm(1.0),), update, rng),
        "local": apply_transforms((ClipNorm(1.0), GaussianNoise(1.0)), update, rng),
    }
    db = {
        name: float(
            psnr(
                x.numpy(), invert_update(net, torch.from_numpy(u), y, (8, 8), steps=300).numpy()
            ).psnr.mean()
        )
        for name, u in views.items()
    }
    assert db["none"] > RECOGNISABLE_DB
    assert db["clip"] > RECOGNISABLE_DB  # clipping rescales; cosine matching ignores scale
    assert db["local"] < FAILED_DB
