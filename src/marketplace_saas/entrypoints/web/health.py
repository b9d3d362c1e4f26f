"""`/healthz` (the process answers), `/readyz` (the database is reachable and migrated) and
`/metrics` (Prometheus text format)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from marketplace_saas.adapters.db import migrate
from marketplace_saas.adapters.db.engine import ping

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

router = APIRouter()
_head_revision = functools.cache(migrate.head_revision)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness(container: Container) -> tuple[bool, dict[str, str]]:
    """(ready, details): the database answers and is at the head migration."""
    try:
        ping(container.engine)
        current = migrate.current_revision(container.engine)
    except Exception as exc:  # any driver error means: not ready
        return False, {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}
    head = _head_revision()
    if current != head:
        return False, {
            "status": "unavailable",
            "database": f"at revision {current}, expected {head}",
            "fix": "marketplace-saas db upgrade",
        }
    return True, {"status": "ok", "database": "ok", "revision": str(current)}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready, details = await run_in_threadpool(readiness, request.app.state.container)
    return JSONResponse(details, status_code=200 if ready else 503)


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
