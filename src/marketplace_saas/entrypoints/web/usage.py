"""`POST /v1/usage`: a batch of usage records from the provider's app.

    Authorization: Bearer <one of USAGE_API_TOKENS>
    {"records": [{"id": "...", "entitlement": "...", "metric": "requests", "value": 3,
                  "time": "2025-01-31T12:34:56Z", "labels": {"resource_name": "db-1"}}, ...]}

Answers 200 `{"accepted": n, "duplicates": n, "rejected": [{"id", "reason"}, ...]}` (a refused
record never blocks the others), 400 for a body that is not such a batch, 401 for a missing or
unknown token, 413 for more than `USAGE_MAX_BATCH` records or a body over USAGE_MAX_BATCH x 2 KiB
(`guards.body_limit`, checked before reading).
"""

from __future__ import annotations

import hmac
import json
from decimal import Decimal
from typing import Any, cast

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from marketplace_saas.config import Settings
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.metering.ports import MeteringApp

router = APIRouter()


def _authorize(request: Request, settings: Settings) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    tokens = settings.usage_tokens()
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    if not tokens:
        raise HTTPException(
            401,
            "no usage API token is configured (USAGE_API_TOKENS)",
            {"WWW-Authenticate": "Bearer"},
        )
    given = token.strip().encode()
    if not any(hmac.compare_digest(given, known.encode()) for known in tokens):
        raise HTTPException(
            401, "unknown bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )


def _integer(text: str) -> int | Decimal:
    """A JSON integer; a very long one as a Decimal, so that its record (not the whole batch,
    as Python's 4300-digit limit on int() would) is refused as too large."""
    return int(text) if len(text) <= 40 else Decimal(text)


def _document(body: bytes) -> Any:
    """The JSON body; its integers as `int` unless one is past `int()`'s digit limit.

    The first reading has no per-integer hook (the hook costs a Python call for every record's
    value). Only a body it refuses is read again with `_integer`: a body with such an integer
    then reads as it always did, and one that is not JSON fails again with the same error.
    An integer of 41 to 4300 digits stays an `int` here, and `parse_value` refuses it as too large
    (or negative) exactly as it refuses the `Decimal` that `_integer` would have made of it.
    """
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        return json.loads(body, parse_float=Decimal, parse_int=_integer)


def _records(body: bytes, max_batch: int) -> list[Any]:
    try:
        document = _document(body)
    except RecursionError:
        raise HTTPException(
            400, "the body is not JSON that can be read: it nests too deeply"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise HTTPException(400, 'the body must be an object with a "records" list')
    records = cast(list[Any], document["records"])
    if len(records) > max_batch:
        raise HTTPException(413, f"{len(records)} records: at most {max_batch} per request")
    return records


@router.post("/v1/usage")
async def ingest_usage(request: Request) -> JSONResponse:
    container = cast(MeteringApp, request.app.state.container)
    settings = container.settings
    _authorize(request, settings)
    body = await request.body()  # capped before reading by `guards.GuardMiddleware`
    records = _records(body, settings.usage_max_batch)
    result = await run_in_threadpool(record_usage, container, records, source="http")
    return JSONResponse(result.to_json())
