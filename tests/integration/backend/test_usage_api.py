"""`POST /v1/usage` over HTTP: bearer token, batch limits, per-record answers."""

from __future__ import annotations

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
