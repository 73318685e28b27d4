"""A round's record: one definition of a ``metrics.jsonl`` line, and one strict parser."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedswarm.messages import Failure, FailureKind, Stage
from fedswarm.reports import EvalScore, RecordError, RoundRecord, RoundReport
from fedswarm.training import Evaluation

# Lines as fedswarm has always written them (before RoundRecord): they must still parse,
# and a record must write them back byte for byte.
LEGACY_LINES = [
    '{"round": 1, "train_loss": 2.1501710140031323, "num_clients": 20, "num_failures": 0, '
    '"update_norm": 0.21420653577302498, "seconds": 0.15896826599987435}',
    '{"round": 5, "train_loss": 0.9, "num_clients": 3, "num_failures": 1, "update_norm": 1.5, '
    '"seconds": 0.25, "eval_loss": 0.5, "eval_accuracy": 0.875, "fed_eval_loss": 0.625, '
    '"fed_eval_accuracy": 0.75}',
    '{"round": 2, "train_loss": 0.8, "num_clients": 2, "num_failures": 0, "update_norm": 1.0, '
    '"seconds": 0.1, "fed_eval_loss": 0.5, "fed_eval_accuracy": 0.5}',
]


@pytest.mark.parametrize("line", LEGACY_LINES)
def test_lines_of_before_parse_and_write_back_byte_for_byte(line: str) -> None:
    record = RoundRecord.from_json(json.loads(line), "metrics.jsonl line 1")
    assert json.dumps(record.to_json()) == line


def test_a_report_is_recorded_with_the_keys_it_always_had() -> None:
    failure = Failure("b", 5, Stage.FIT, FailureKind.DROPPED, "dropped")
    report = RoundReport(
        5, 3, 1, 0.9, 1.5, 0.25, Evaluation(0.5, 0.875, 40), None, ("a",), (failure,)
    )
    record = RoundRecord.from_report(report)
    assert record.central == EvalScore(0.5, 0.875)
    assert record.federated is None
    assert list(record.to_json()) == [
        "round", "train_loss", "num_clients", "num_failures", "update_norm", "seconds",
        "eval_loss", "eval_accuracy",
    ]  # fmt: skip
    assert RoundRecord.from_json(record.to_json(), "here") == record


def test_wrappers_metrics_round_trip_under_their_namespace() -> None:
    report = RoundReport(1, 2, 0, 0.5, 1.0, 0.1, metrics={"privacy/epsilon": 1.25})
    line = RoundRecord.from_report(report).to_json()
    assert line["metrics"] == {"privacy/epsilon": 1.25}
    assert RoundRecord.from_json(json.loads(json.dumps(line)), "here").metrics == {
        "privacy/epsilon": 1.25
    }
    with pytest.raises(RecordError, match="'epsilon' is not 'namespace/name'"):
        RoundRecord(1, 0.5, 2, 0, 1.0, 0.1, metrics={"epsilon": 1.0})


def _line(**changes: Any) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(LEGACY_LINES[1])
    line.update(changes)
    return {k: v for k, v in line.items() if v is not ...}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "expected a JSON object, got list"),
        (_line(round=...), "missing key 'round'"),
        (_line(train_loss="0.9"), "'train_loss' must be a number, got '0.9'"),
        (_line(num_clients=2.5), "'num_clients' must be a whole number >= 0"),
        (_line(num_failures=True), "'num_failures' must be a whole number"),
        (_line(eval_accuracy=...), "'eval_loss' and 'eval_accuracy' come together"),
        (_line(acc=1.0), r"unknown key\(s\) \['acc'\]"),
        (_line(metrics=[1]), "'metrics' must be an object"),
        (_line(metrics={"dp/eps": None}), "'metrics.dp/eps' must be a number, got None"),
        (_line(metrics={"eps": 1.0}), "metric key 'eps' is not 'namespace/name'"),
    ],
)
def test_a_damaged_line_is_named_with_its_key(raw: object, message: str) -> None:
    with pytest.raises(RecordError, match=rf"^runs/x/metrics.jsonl line 7: .*{message}"):
        RoundRecord.from_json(raw, "runs/x/metrics.jsonl line 7")


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
scores = st.none() | st.builds(EvalScore, finite, finite)
metric_keys = st.from_regex(r"[a-z]{1,6}/[a-z_]{1,8}", fullmatch=True)


@given(
    st.builds(
        RoundRecord,
        round=st.integers(0, 10**6),
        train_loss=st.floats(width=64) | st.just(math.inf),
        num_clients=st.integers(0, 10**4),
        num_failures=st.integers(0, 10**4),
        update_norm=finite,
        seconds=finite,
        central=scores,
        federated=scores,
        metrics=st.dictionaries(metric_keys, finite, max_size=3),
    )
)
def test_every_record_survives_its_own_line(record: RoundRecord) -> None:
    back = RoundRecord.from_json(json.loads(json.dumps(record.to_json())), "line")
    assert json.dumps(back.to_json()) == json.dumps(record.to_json())  # NaN != NaN, bytes agree
