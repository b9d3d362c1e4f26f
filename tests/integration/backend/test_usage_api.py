"""`POST /v1/usage` over HTTP: bearer token, batch limits, per-record answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from marketplace_saas.entrypoints.web import guards, usage
from tests.support.metering import (
    T0,
    FixedClock,
    SeededEntitlement,
    metering_container,
    seed_entitlements,
    serve_app,
)

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def client(migrated_database_url: str) -> Iterator[httpx.Client]:
    container = metering_container(
        migrated_database_url,
        clock=FixedClock(T0 + timedelta(hours=5)),
        USAGE_MAX_BATCH=5,
        USAGE_API_TOKENS="other-token,test-token",
    )
    with container.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement("ent-1", "pro", T0, "project_number:1")])
    app = FastAPI()
    app.state.container = container
    app.include_router(usage.router)
    app.add_middleware(guards.GuardMiddleware, settings=container.settings)  # as create_app does
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as test_client:
        yield test_client
    container.close()


def record(rid: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "entitlement": "ent-1", "metric": "requests", "value": 2, **extra}


def test_a_batch_answers_accepted_duplicate_and_rejected_counts(client: httpx.Client) -> None:
    body = {"records": [record("a"), record("a"), record("b", value=-3), record("c", value=1.5)]}
    response = client.post("/v1/usage", json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [{"id": "b", "reason": "value must not be negative"}],
    }
    again = client.post("/v1/usage", json={"records": [record("a")]}, headers=AUTH)
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_labels_are_checked_with_googles_rule_at_post(client: httpx.Client) -> None:
    """`POST /v1/usage` applies the label rule the emulator's Service Control applies: the
    reserved keys as spelled and international letters are accepted; an uppercase value, a key
    with a dot and a trailing newline are refused with the reason."""
    reserved = "cloudmarketplace.googleapis.com/resource_name"
    body = {
        "records": [
            record("ok-reserved", labels={reserved: "orders-db", "env": "prod"}),
            record("ok-intl", labels={"région": "île-de-france"}),
            record("bad-upper", labels={"env": "Prod"}),
            record("bad-dot", labels={"team.name": "x"}),
            record("bad-newline", labels={"env": "prod\n"}),
        ]
    }
    response = client.post("/v1/usage", json=body, headers=AUTH)
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 2
    reasons = {item["id"]: item["reason"] for item in answer["rejected"]}
    assert set(reasons) == {"bad-upper", "bad-dot", "bad-newline"}
    assert "reserved keys" in reasons["bad-dot"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdC10b2tlbg=="}],
)
def test_a_missing_or_unknown_token_is_401(client: httpx.Client, headers: dict[str, str]) -> None:
    response = client.post("/v1/usage", json={"records": [record("a")]}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "content", [b"{not json", b"[]", b'{"records": {}}', b'{"items": []}', b"\xff\xfe"]
)
def test_a_body_that_is_not_a_batch_is_400(client: httpx.Client, content: bytes) -> None:
    response = client.post(
        "/v1/usage", content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"]


def test_more_records_than_the_batch_limit_is_413_and_nothing_is_stored(
    client: httpx.Client,
) -> None:
    too_many = {"records": [record(f"r{i}") for i in range(6)]}
    assert client.post("/v1/usage", json=too_many, headers=AUTH).status_code == 413
    oversized = b'{"records": [' + b" " * (5 * guards.USAGE_BYTES_PER_RECORD) + b"]}"
    response = client.post(
        "/v1/usage", content=oversized, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    after = client.post("/v1/usage", json={"records": [record("r0")]}, headers=AUTH)
    assert after.json()["accepted"] == 1


def _raw_record(rid: str, field: str, raw_json: str) -> str:
    fields = {"id": json.dumps(rid), "entitlement": '"ent-1"', "metric": '"requests"'}
    fields["value"] = "2"
    fields[field] = raw_json
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


# Each bad record of the penetration test (issue 17, findings 7 and 8), as raw JSON, with the
# words its refusal must carry.
BAD_RECORDS = [
    ("huge-number", "value", "1e999999999", "too large"),
    ("huge-string", "value", '"1e999999999"', "too large"),
    ("huge-integer", "value", "9" * 5000, "too large"),
    ("long-integer", "value", "9" * 100, "too large"),
    ("long-negative-integer", "value", "-" + "9" * 100, "must not be negative"),
    ("tiny-number", "value", "1e-999999999", "decimal places"),
    ("underscore", "value", '"1_000"', "not a number"),
    ("arabic-digit", "value", '"\\u0663"', "not a number"),
    ("spaces", "value", '" 3 "', "not a number"),
    ("deep-value", "value", "[" * 300 + "]" * 300, "must be a number"),
    ("year-one", "time", '"0001-01-01T00:00:00+14:00"', "years 1 to 9999"),
    ("year-9999", "time", '"9999-12-31T23:59:59-14:00"', "years 1 to 9999"),
    ("no-offset", "time", '"2025-01-31T12:00:00"', "RFC 3339"),
    ("surrogate-metric", "metric", '"\\ud800"', "not valid text"),
    ("nul-entitlement", "entitlement", '"ent\\u0000"', "not valid text"),
]


def test_each_bad_record_is_refused_with_its_reason_and_the_rest_accepted(
    client: httpx.Client,
) -> None:
    """Overflowing numbers, out-of-range offsets, lone surrogates, NUL, deep nesting and lenient
    number forms each refuse one record (never a 500 for the batch); good records go in."""
    moment = (T0 + timedelta(hours=1)).isoformat()
    good = [json.dumps(record("good-1", time=moment)), json.dumps(record("good-2", time=moment))]
    bad = [_raw_record(rid, field, raw) for rid, field, raw, _ in BAD_RECORDS]
    surrogate_id = '{"id": "\\ud800", "entitlement": "ent-1", "metric": "requests", "value": 1}'
    records = [good[0], *bad, surrogate_id, good[1]]
    headers = {**AUTH, "Content-Type": "application/json"}
    accepted, rejected = 0, []
    for start in range(0, len(records), 5):  # the fixture's USAGE_MAX_BATCH
        body = '{"records": [' + ", ".join(records[start : start + 5]) + "]}"
        response = client.post("/v1/usage", content=body.encode(), headers=headers)
        assert response.status_code == 200, response.text
        accepted += response.json()["accepted"]
        rejected += response.json()["rejected"]
    assert accepted == 2
    reasons = {item["id"]: item["reason"] for item in rejected}
    for rid, _, _, words in BAD_RECORDS:
        assert words in reasons[rid], (rid, reasons.get(rid))
    assert "not valid text" in reasons[None]
    assert len(rejected) == len(BAD_RECORDS) + 1


def test_the_nine_decimal_rule_and_the_number_grammar_keep_exact_values(
    client: httpx.Client,
) -> None:
    """A value at the nine-decimal limit is kept exactly; JSON's exponent form is accepted."""
    moment = (T0 + timedelta(hours=1)).isoformat()
    body = {
        "records": [
            record("nine", value="0.000000001", time=moment),
            record("exponent", value="1.5e2", time=moment),
        ]
    }
    answer = client.post("/v1/usage", json=body, headers=AUTH).json()
    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}
