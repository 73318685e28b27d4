"""Secure-aggregation benchmark: seconds per round, CPU per stage and bytes per participant.

Participants are trivial (each sends a random float32 vector), so what is measured is the
protocol. Each round a fresh random set drops out: each participant independently with
probability ``--dropout``, at a stage drawn uniformly from the four. Runs in one process
(the sequential backend): a round's seconds are the participants' and the coordinator's
work added up. The same participants also run plain FedAvg rounds for comparison.

    python bench/secagg.py --clients 50 --dim 100000 --dropout 0.1 --rounds 100 \
        --protocol secagg+ --json /tmp/secagg.json

JSON: ``round_seconds`` and ``round_cpu_seconds`` (per round), ``completed_rounds``,
``rounds``, the chosen
``degree``/``threshold``/``failure_bound``, ``cpu_seconds`` per stage and round (the
participants' total, and the coordinator's work before sending the stage, which is checking
the previous stage's replies; ``finish``: checking the last replies and unmasking),
``bytes_per_participant`` (sent, received; encoded with the wire codec, in an extra round
without dropouts), ``plain_round_seconds`` (FedAvg without secure aggregation),
``aborts`` (the reasons) and ``machine`` (with its load average: the machine may be shared).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python bench/secagg.py`: import `bench.*` too
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Generator, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench.sim_report import machine  # noqa: E402
from fedswarm.messages import ClientId, Outcome  # noqa: E402
from fedswarm.params import Params  # noqa: E402
from fedswarm.presets import fedavg  # noqa: E402
from fedswarm.rounds import Exchange, FitRoundResult, fit_round  # noqa: E402
from fedswarm.sampling import UniformSampler  # noqa: E402
from fedswarm.secagg import KINDS, SecureFitRound, SecureSettings  # noqa: E402
from fedswarm.secagg.graph import choose_parameters  # noqa: E402
from fedswarm.secagg.messages import ADVERTISE, MASKED_INPUT, SHARE_KEYS, UNMASK  # noqa: E402
from fedswarm.secagg.simulation import StageDropouts, VectorClients  # noqa: E402
from fedswarm.secagg.wire import secagg_codec  # noqa: E402
from fedswarm.simulation.memory import InMemoryTransport  # noqa: E402
from fedswarm.strategy import RunInfo, ServerState, Strategy  # noqa: E402
from fedswarm.training import LocalTraining  # noqa: E402

STAGES = [ADVERTISE, SHARE_KEYS, MASKED_INPUT, UNMASK]
RUN = RunInfo("bench-secagg", 0)


def _drops(ids: Sequence[ClientId], dropout: float, rng: np.random.Generator) -> dict:  # type: ignore[type-arg]
    gone = rng.random(len(ids)) < dropout
    stage = rng.integers(0, len(STAGES), len(ids))
    return {
        s: {c for c, g, w in zip(ids, gone, stage, strict=True) if g and w == k}
        for k, s in enumerate(STAGES)
    }


class Meter:
    """Times a protocol stage by stage: the transport's share is the participants' work
    (in process, one after another), the generator's share the coordinator's."""

    def __init__(self, codec_bytes: bool) -> None:
        self.cpu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.sent: dict[ClientId, int] = defaultdict(int)  # by participants
        self.received: dict[ClientId, int] = defaultdict(int)
        self.codec = secagg_codec() if codec_bytes else None

    def pump(self, protocol: Generator[Exchange, Sequence[Outcome], Any], transport: Any) -> Any:
        t0 = time.process_time()
        try:
            exchange = next(protocol)
            while True:
                stage = str(exchange.stage)
                t1 = time.process_time()
                self.cpu[stage]["coordinator"] += t1 - t0  # preparing this exchange
                outcomes = transport.exchange(exchange.requests, timeout=None, fold=exchange.fold)
                t0 = time.process_time()
                self.cpu[stage]["participants"] += t0 - t1
                self._count(exchange, outcomes)
                t0 = time.process_time()
                exchange = protocol.send(outcomes)
        except StopIteration as done:
            self.cpu["finish"]["coordinator"] += time.process_time() - t0
            return done.value

    def _count(self, exchange: Exchange, outcomes: Sequence[Outcome]) -> None:
        if self.codec is None:
            return
        for cid, ins in exchange.requests:
            self.received[cid] += len(self.codec.encode(ins))
        for o in outcomes:
            if not hasattr(o, "kind"):  # a reply, not a Failure
                self.sent[o.client_id] += len(self.codec.encode(o))


def _strategy(n: int) -> Strategy:
    return fedavg(
        LocalTraining(batch_size=1, lr=0.1, epochs=1), UniformSampler(clients_per_round=n)
    )


def _rounds(args: argparse.Namespace, secure: bool) -> dict[str, Any]:
    ids = [f"c{i:04d}" for i in range(args.clients)]
    make = VectorClients(args.seed, args.dim)
    inner = InMemoryTransport(ids, make, fail_fast=False, kinds=KINDS)
    strategy = _strategy(args.clients)
    state: ServerState = strategy.init(Params.from_arrays({"w": np.zeros(args.dim, np.float32)}))
    settings = SecureSettings(
        complete_graph=args.protocol == "secagg",
        target_dropout=args.dropout,
        failure_probability=0.01,
    )
    protocol = SecureFitRound(settings)
    rng = np.random.default_rng(args.seed + 1)
    reasons: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: reasons.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("fedswarm.secagg").addHandler(handler)
    seconds, cpu_seconds, completed, aborts = [], [], 0, []
    cpu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    meter: Meter | None = None
    for rnd in range(1, args.rounds + 1):
        transport = StageDropouts(inner, _drops(ids, args.dropout, rng), frozenset({rnd}))
        round_fn = protocol if secure else fit_round
        meter = Meter(codec_bytes=False)
        start, cpu0 = time.perf_counter(), time.process_time()
        result: FitRoundResult = meter.pump(round_fn(strategy, state, ids, RUN, 1), transport)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu0)
        state = result.state
        completed += result.summary.num_replies > 0
        if result.summary.num_replies == 0:
            aborts.append(reasons[-1] if reasons else f"round {rnd}")
        for stage, parts in meter.cpu.items():
            for who, s in parts.items():
                cpu[stage][who] += s / args.rounds
    out: dict[str, Any] = {
        "round_seconds": seconds,
        "round_cpu_seconds": cpu_seconds,
        "completed_rounds": completed,
        "aborts": aborts,
    }
    out["cpu_seconds"] = {s: dict(p) for s, p in cpu.items()}
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--dropout", type=float, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--protocol", choices=["secagg+", "secagg"], default="secagg+")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--plain-rounds", type=int, default=None, help="FedAvg rounds (default: --rounds)"
    )
    p.add_argument("--no-bytes", action="store_true", help="skip the byte count (it encodes)")
    args = p.parse_args(argv)
    choice = choose_parameters(args.clients, args.dropout, 0.01, args.protocol == "secagg")
    secure = _rounds(args, secure=True)
    plain_args = argparse.Namespace(**{**vars(args), "rounds": args.plain_rounds or args.rounds})
    plain = _rounds(plain_args, secure=False)
    result = {
        **secure,
        "rounds": args.rounds,
        "protocol": args.protocol,
        "clients": args.clients,
        "dim": args.dim,
        "dropout": args.dropout,
        "degree": choice.degree,
        "threshold": choice.threshold,
        "failure_bound": choice.failure_bound,
        "median_round_seconds": statistics.median(secure["round_seconds"]),
        "median_round_cpu_seconds": statistics.median(secure["round_cpu_seconds"]),
        "plain_round_seconds": plain["round_seconds"],
        "plain_median_round_seconds": statistics.median(plain["round_seconds"]),
        "plain_median_round_cpu_seconds": statistics.median(plain["round_cpu_seconds"]),
        "bytes_per_participant": _bytes(args),
        "machine": {**machine(), "loadavg_1m": os.getloadavg()[0]},
    }
    args.json.write_text(json.dumps(result, indent=1))
    return result


def _bytes(args: argparse.Namespace) -> dict[str, float]:
    """Encoded bytes one participant sends and receives in a round without dropouts."""
    if args.no_bytes:
        return {}
    ids = [f"c{i:04d}" for i in range(args.clients)]
    make = VectorClients(args.seed, args.dim)
    transport = InMemoryTransport(ids, make, fail_fast=False, kinds=KINDS)
    strategy = _strategy(args.clients)
    state = strategy.init(Params.from_arrays({"w": np.zeros(args.dim, np.float32)}))
    settings = SecureSettings(complete_graph=args.protocol == "secagg", target_dropout=args.dropout)
    meter = Meter(codec_bytes=True)
    meter.pump(SecureFitRound(settings)(strategy, state, ids, RUN, 1), transport)
    return {
        "sent": statistics.mean(meter.sent.values()),
        "received": statistics.mean(meter.received.values()),
        "plain_update": 4.0 * args.dim,
    }


if __name__ == "__main__":
    r = main()
    print(
        f"{r['protocol']} n={r['clients']} dim={r['dim']} dropout={r['dropout']}: "
        f"{r['completed_rounds']}/{r['rounds']} rounds, median {r['median_round_seconds']:.3f} s "
        f"({r['median_round_cpu_seconds']:.3f} s CPU) "
        f"(plain FedAvg {r['plain_median_round_seconds']:.3f} s), degree {r['degree']}, "
        f"threshold {r['threshold']}"
    )
