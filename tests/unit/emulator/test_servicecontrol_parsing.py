"""What shape Service Control bodies must have; anything malformed is 400 INVALID_ARGUMENT."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace_emulator.servicecontrol import responses
from marketplace_emulator.servicecontrol.exceptions import InvalidArgument

OP = {
    "operationId": "op-1",
    "consumerId": "project_number:1",
    "startTime": "2026-03-01T00:00:00Z",
    "endTime": "2026-03-01T01:00:00Z",
    "metricValueSets": [{"metricName": "s/m", "metricValues": [{"int64Value": "5"}]}],
}


def with_op(**changes: Any) -> dict[str, Any]:
    return {"operations": [{**OP, **changes}]}


def test_snake_case_field_names_are_accepted_as_google_transcoding_does() -> None:
    body = {
        "operations": [{"operation_id": "x", "consumer_id": "c", "start_time": OP["startTime"]}]
    }
    [parsed] = responses.parse_report(body).operations
    assert (parsed.operation_id, parsed.consumer_id) == ("x", "c")


def test_int64_values_are_normalised_so_equal_numbers_have_equal_fingerprints() -> None:
    values = [{"metricName": "s/m", "metricValues": [{"int64Value": "005"}]}]
    [a] = responses.parse_report(with_op(metricValueSets=values)).operations
    [b] = responses.parse_report(with_op()).operations
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (with_op(bogus=1), 'Unknown name "bogus"'),
        (with_op(startTime="yesterday"), "Timestamp"),
        (with_op(startTime="2026-03-01T00:00:00"), "Timestamp"),
        (with_op(operationId=""), "operationId"),
        (with_op(consumerId=None), "consumerId"),
        ({"operations": [{k: v for k, v in OP.items() if k != "startTime"}]}, "startTime"),
        (with_op(metricValueSets={"a": 1}), "metricValueSets"),
        (with_op(userLabels={"a": 1}), "userLabels"),
        (with_op(metricValueSets=[{"metricName": "s/m", "metricValues": [{}]}]), "exactly one"),
        (
            with_op(
                metricValueSets=[
                    {"metricName": "s/m", "metricValues": [{"int64Value": "1", "doubleValue": 1}]}
                ]
            ),
            "exactly one",
        ),
        (
            with_op(
                metricValueSets=[{"metricName": "s/m", "metricValues": [{"int64Value": "1.5"}]}]
            ),
            "TYPE_INT64",
        ),
        (
            with_op(
                metricValueSets=[{"metricName": "s/m", "metricValues": [{"int64Value": "9" * 20}]}]
            ),
            "TYPE_INT64",
        ),
        (
            with_op(
                metricValueSets=[{"metricName": "s/m", "metricValues": [{"doubleValue": "1"}]}]
            ),
            "TYPE_DOUBLE",
        ),
        ({"operations": "nope"}, "operations"),
        ({"operations": [1]}, "expected an object"),
    ],
)
def test_malformed_report_bodies_are_invalid_argument(body: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        responses.parse_report(body)


def test_check_needs_an_operation() -> None:
    with pytest.raises(InvalidArgument, match="operation"):
        responses.parse_check({"serviceConfigId": "x"})


@pytest.mark.parametrize("raw", [b"{", b"[]", b"12", b'"x"', b"\xff", b"[" * 100_000])
def test_a_body_that_is_not_a_json_object_is_invalid_argument(raw: bytes) -> None:
    with pytest.raises(InvalidArgument):
        responses.load_json(raw)
