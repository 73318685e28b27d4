"""A split participant that dies mid-epoch (run as a script by tests/test_split_deploy.py).

``python tests/split_agent.py SERVER PKI NAME STEPS``: serves honestly and exits abruptly (no
goodbye, as a crash or a pulled plug would) on its STEPS-th ``split.step`` instruction.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from fedswarm.client import ClientApp, Handler, Session
from fedswarm.deploy.node import (
    PARTICIPANT_KINDS,
    PARTITION,
    find_node,
    participant_factory,
    tls_identity,
)
from fedswarm.messages import ClientMemory, Reply
from fedswarm.run.build import run_codec
from fedswarm.security.pki import Role
from fedswarm.split.messages import StepIns
from fedswarm.transport.grpc.client import run_participant
from fedswarm.transport.grpc.frames import RunSpec


@dataclass
class DieOnStep:
    inner: Handler
    steps: int
    seen: list[int] = field(default_factory=list)

    def __call__(
        self, app: ClientApp, ins: StepIns, memory: ClientMemory, session: Session
    ) -> tuple[Reply, ClientMemory]:
        self.seen.append(ins.round)
        if len(self.seen) == self.steps:
            os._exit(17)  # mid-epoch: its turn has started and is not done
        return self.inner(app, ins, memory, session)


def main(server: str, pki: Path, name: str, steps: int) -> None:
    honest = participant_factory(name, PARTITION, own_process=True)
    dying: list[DieOnStep] = []

    def build(spec: RunSpec) -> ClientApp:
        app = honest(spec)
        dying.append(dying[0] if dying else DieOnStep(app.handlers[StepIns], steps))
        return replace(app, handlers={**app.handlers, StepIns: dying[0]})

    node = tls_identity(find_node(pki, Role.CLIENT, name))
    run_participant(server, node, build, codec=run_codec(), kinds=PARTICIPANT_KINDS)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
