"""Misbehaving participants for the process-level deployment tests (run as scripts).

``python tests/deploy_agent.py nan SERVER PKI NAME``: trains honestly but sends NaN updates.
``python tests/deploy_agent.py replay SERVER PKI NAME``: answers every instruction honestly
and sends its first fit reply a second time (a replay), then goes on serving.
"""

from __future__ import annotations

import logging
import queue
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset
from fedswarm.deploy.node import PARTITION, find_node, participant_factory, tls_identity
from fedswarm.learner import Learner
from fedswarm.messages import ClientMemory, EvaluateIns, FitIns
from fedswarm.params import Params
from fedswarm.security.pki import Role
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.transport.grpc.client import run_participant
from fedswarm.transport.grpc.frames import (
    METHOD,
    Kind,
    RunSpec,
    ack_frame,
    message_frames,
    read_hello,
    unpack,
)
from fedswarm.wire import Assembler, decode, encode


@dataclass(frozen=True)
class NanLearner:
    inner: Learner

    def init_params(self, seed: int) -> Params:
        return self.inner.init_params(seed)

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        fit = self.inner.fit(params, data, training, correction, seed)
        return LocalFit(np.full_like(fit.params, np.nan), fit.num_examples, fit.num_steps, 0.5)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return self.inner.evaluate(params, data)


def nan(server: str, pki: Path, name: str) -> None:
    honest = participant_factory(name, PARTITION)

    def build(spec: RunSpec) -> ClientApp:
        app = honest(spec)
        return ClientApp(app.client_id, NanLearner(app.learner), app.data)

    run_participant(server, tls_identity(find_node(pki, Role.CLIENT, name)), build)


def replay(server: str, pki: Path, name: str) -> None:
    node = find_node(pki, Role.CLIENT, name)
    creds = grpc.ssl_channel_credentials(
        node.ca_cert.read_bytes(), node.key.read_bytes(), node.cert.read_bytes()
    )
    with grpc.secure_channel(server, creds) as channel:
        grpc.channel_ready_future(channel).result(timeout=120)  # the coordinator may be starting

        q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def drain() -> Iterator[bytes]:
            while (frame := q.get()) is not None:
                yield frame

        call = channel.stream_stream(METHOD)(drain())
        assembler, app, replayed = Assembler(max_bytes=1 << 30), None, False
        memory: ClientMemory = {}
        for frame in call:
            kind, chunk = unpack(frame)
            if kind is Kind.END:
                break
            if kind is Kind.HELLO:
                app = participant_factory(name, PARTITION)(read_hello(chunk))
                continue
            if (data := assembler.feed(chunk)) is None or app is None:
                continue
            q.put(ack_frame(chunk.message_id))
            ins = decode(data, max_bytes=1 << 30)
            assert isinstance(ins, FitIns | EvaluateIns)
            reply, memory = app.handle(ins, memory)
            outbox = list(message_frames(encode(reply), chunk.message_id))
            for f in outbox:
                q.put(f)
            if not replayed:
                for f in outbox:  # the same reply again: it must be refused
                    q.put(f)
                replayed = True
                print("replayed", chunk.message_id, flush=True)
        q.put(None)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    mode, address, pki_dir, who = sys.argv[1:5]
    {"nan": nan, "replay": replay}[mode](address, Path(pki_dir), who)
