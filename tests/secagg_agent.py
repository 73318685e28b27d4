"""A deployed participant for the secure-aggregation process test: ``fedswarm client`` as a
script, which with ``quit`` dies abruptly when the masked-input stage reaches it, that is
after it has shared its keys.

    python secagg_agent.py SERVER PKI NAME [quit]
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedswarm.client import ClientApp
from fedswarm.deploy.node import find_node, node_binding, participant_factory, tls_identity
from fedswarm.secagg import KINDS
from fedswarm.secagg.messages import MaskedInputIns
from fedswarm.secagg.wire import secagg_codec
from fedswarm.security.pki import Role
from fedswarm.transport.grpc.client import run_participant
from fedswarm.transport.grpc.frames import RunSpec


def _die(*args: Any) -> Any:
    print("killed after sharing keys", flush=True)
    os._exit(3)


def main(server: str, pki: Path, name: str, quit_: bool) -> None:
    node = find_node(pki, Role.CLIENT, name)
    factory = participant_factory(name, "partition", own_process=True, binding=node_binding(node))

    def build(spec: RunSpec) -> ClientApp:
        app = factory(spec)
        return replace(app, handlers={**app.handlers, MaskedInputIns: _die}) if quit_ else app

    run_participant(server, tls_identity(node), build, codec=secagg_codec(), kinds=KINDS)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:] == ["quit"])
