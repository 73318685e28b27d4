"""Reference models of the federated-learning literature."""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["CNN", "MLP", "CharLSTM", "LogisticRegression"]


class MLP(nn.Module):
    """Fully connected ReLU network; ``MLP(784, (200, 200), 10)`` is McMahan et al.'s 2NN."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        sizes = (in_features, *hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class LogisticRegression(MLP):
    """Multinomial logistic regression (an MLP with no hidden layer)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(in_features, (), num_classes)


class CNN(nn.Module):
    """McMahan et al.'s CNN: two 5x5 conv + 2x2 max-pool blocks, a dense layer, softmax.

    ``CNN(1, 28, (32, 64), 512, 10)`` is the paper's (1.66M parameters); smaller
    ``channels``/``hidden`` give the cheap variants used in tests and benchmarks.
    """

    def __init__(
        self,
        in_channels: int,
        size: int,
        channels: tuple[int, int],
        hidden: int,
        num_classes: int,
    ):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = c2 * (size // 4) ** 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


class CharLSTM(nn.Module):
    """LEAF's Shakespeare model: embedding 8, two LSTM layers of 256, next-char logits."""

    def __init__(self, vocab_size: int, embed: int = 8, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, seq) int64 -> logits for the character after the sequence (batch, vocab)
        out, _ = self.lstm(self.embed(x))
        logits: torch.Tensor = self.head(out[:, -1])
        return logits
