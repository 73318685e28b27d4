"""Gradient inversion against one participant's update, without defence and under DP.

Digits (8x8, scikit-learn's copy of the UCI set, pixels scaled to [0, 1]); a small MLP
(64-64-10, sigmoid, as in Zhu et al.'s DLG setting) at its random initialisation; the
participant takes one full-batch SGD step (lr 0.1) on a batch of 1 to 8 images and sends the
update. The attacker (``fedswarm.privacy.inversion``: Inverting Gradients, labels known)
sees that update:

- ``none``: as trained;
- ``clip``: clipped to C = 1 (what the coordinator receives under central DP);
- ``local``: clipped and noised by the participant (local DP, z = 1: the default
  ``noise_multiplier``), drawn through the same transforms a participant applies;

Success threshold: mean PSNR >= 18 dB (the digit is recognisable; see the pictures), failure:
<= 12 dB. Pictures of the originals and reconstructions go to ``--out``.

    python bench/privacy_attack.py --out runs/bench-attack
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from fedswarm.privacy import GaussianNoise
from fedswarm.privacy.inversion import invert_update, local_update, psnr
from fedswarm.transforms import ClipNorm, TransformRandomness, apply_transforms

DEFENCES = ("none", "clip", "local")


def model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10))


def defended(update: torch.Tensor, defence: str, clip: float, z: float, seed: int) -> torch.Tensor:
    transforms = {
        "none": (),
        "clip": (ClipNorm(clip),),
        "local": (ClipNorm(clip), GaussianNoise(z * clip)),
    }[defence]
    rng = TransformRandomness(0, np.random.default_rng(seed))
    out = apply_transforms(transforms, update.numpy().astype(np.float32), rng)
    return torch.from_numpy(np.asarray(out, np.float32))


def attack(
    batch: int, defence: str, args: argparse.Namespace
) -> tuple[float, np.ndarray, np.ndarray]:
    digits = load_digits()
    pick = np.random.default_rng(args.seed + batch).choice(len(digits.images), batch, replace=False)
    x = torch.tensor(digits.images[pick] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[pick])
    net = model(args.seed)
    update = defended(local_update(net, x, y, lr=0.1), defence, args.clip, args.z, args.seed)
    guess = invert_update(net, update, y, (8, 8), steps=args.steps, seed=args.seed)
    result = psnr(x.numpy(), guess.numpy())
    return float(result.psnr.mean()), x.numpy(), result.images


def picture(rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    fig, axes = plt.subplots(
        len(rows), len(rows[0][1]), squeeze=False, figsize=(8, 1.2 * len(rows))
    )
    for r, (name, images) in enumerate(rows):
        for c, image in enumerate(images):
            axes[r][c].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(name, rotation=0, ha="right", fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-attack"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--z", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    for batch in args.batches:
        rows: list[tuple[str, np.ndarray]] = []
        for defence in DEFENCES:
            value, original, images = attack(batch, defence, args)
            if not rows:
                rows.append(("original", original))
            rows.append((defence, images))
            table.append({"batch": batch, "defence": defence, "psnr_db": value})
            print(f"batch {batch} defence {defence}: PSNR {value:.1f} dB", flush=True)
        picture(rows, args.out / f"batch{batch}.png")
    (args.out / "results.json").write_text(json.dumps(table, indent=2))
    print("| batch | " + " | ".join(DEFENCES) + " |")
    print("|---|" + "---|" * len(DEFENCES))
    for batch in args.batches:
        cells = [f"{t['psnr_db']:.1f}" for t in table if t["batch"] == batch]
        print(f"| {batch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
