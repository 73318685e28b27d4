"""PyTorch support: the learner that trains a user's ``nn.Module`` and reference models."""

from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import CNN, MLP, CharLSTM, LogisticRegression
from fedswarm.pytorch.params import load_params, module_params
from fedswarm.pytorch.vectorized import NotVectorizable, VectorizedTorchLearner, vectorizable

__all__ = [
    "CNN",
    "MLP",
    "CharLSTM",
    "LogisticRegression",
    "NotVectorizable",
    "TorchLearner",
    "VectorizedTorchLearner",
    "load_params",
    "module_params",
    "vectorizable",
]
