"""`POST /v1/usage`: a batch of usage records from the provider's app.

    Authorization: Bearer <one of USAGE_API_TOKENS>
    {"records": [{"id": "...", "entitlement": "...", "metric": "requests", "value": 3,
                  "time": "2025-01-31T12:34:56Z", "labels": {"resource_name": "db-1"}}, ...]}

Answers 200 `{"accepted": n, "duplicates": n, "rejected": [{"id", "reason"}, ...]}` (a refused
record never blocks the others), 400 for a body that is not such a batch, 401 for a missing or
unknown token, 413 for more than `USAGE_MAX_BATCH` records or an oversized body.
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

BYTES_PER_RECORD = 2048  # the body limit is USAGE_MAX_BATCH records of this size


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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _records(body: bytes, max_batch: int) -> list[Any]:
    try:
        document = json.loads(body, parse_float=Decimal)
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
    body = await _read_body(request, settings.usage_max_batch * BYTES_PER_RECORD)
    records = _records(body, settings.usage_max_batch)
    result = await run_in_threadpool(record_usage, container, records, source="http")
    return JSONResponse(result.to_json())
