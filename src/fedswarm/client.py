"""A participant: answers instructions with its own learner and data."""

from __future__ import annotations

from dataclasses import dataclass

from fedswarm.data.arrays import ClientData
from fedswarm.learner import Learner
from fedswarm.messages import (
    ClientId,
    ClientMemory,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Instruction,
    Reply,
)
from fedswarm.training import GradientCorrection, LocalFit
from fedswarm.transforms import apply_transforms

__all__ = ["ClientApp"]


@dataclass(frozen=True)
class ClientApp:
    """Handles one instruction at a time; its memory is passed in and handed back."""

    client_id: ClientId
    learner: Learner
    data: ClientData

    def handle(self, ins: Instruction, memory: ClientMemory) -> tuple[Reply, ClientMemory]:
        if isinstance(ins, FitIns):
            return self.fit(ins, memory)
        return self.evaluate(ins), memory

    def fit(self, ins: FitIns, memory: ClientMemory) -> tuple[FitRes, ClientMemory]:
        correction = self.prepare_fit(ins, memory)
        fit = self.learner.fit(ins.params, self.data.train, ins.training, correction, ins.seed)
        return self.complete_fit(ins, memory, fit)

    # The two halves around local training, for backends that train many clients at once.
    def prepare_fit(self, ins: FitIns, memory: ClientMemory) -> GradientCorrection:
        return ins.step.correction(memory, ins.params.dim)

    def complete_fit(
        self, ins: FitIns, memory: ClientMemory, fit: LocalFit
    ) -> tuple[FitRes, ClientMemory]:
        update = fit.params - ins.params.flat
        extra, memory = ins.step.finish(memory, update, fit, ins.training)  # from the raw update
        update = apply_transforms(ins.transforms, update, ins.seed)
        res = FitRes(
            client_id=self.client_id,
            round=ins.round,
            update=update,
            num_examples=fit.num_examples,
            num_steps=fit.num_steps,
            train_loss=fit.train_loss,
            extra=extra,
        )
        return res, memory

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        ev = self.learner.evaluate(ins.params, self.data.test)
        return EvaluateRes(self.client_id, ins.round, ev.loss, ev.accuracy, ev.num_examples)
