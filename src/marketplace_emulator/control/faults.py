"""`PUT /emulator/v1/faults` replaces the fault settings (`{}` clears them); `GET` shows them.

The injector is `request.app.state.emulator.faults`; the body is described in
`marketplace_emulator.faults`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from fastapi import APIRouter, Request
from pydantic import ValidationError

from marketplace_emulator import errors
from marketplace_emulator.faults import FaultInjector, FaultSettings

router = APIRouter()


def _injector(request: Request) -> FaultInjector:
    return cast(FaultInjector, request.app.state.emulator.faults)


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_settings(raw: bytes) -> FaultSettings:
    """Validated settings from a request body, or 400 INVALID_ARGUMENT saying what is wrong."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise errors.InvalidArgument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise errors.InvalidArgument("Fault settings must be a JSON object.")
    try:
        return FaultSettings.model_validate(body)
    except ValidationError as exc:
        raise errors.InvalidArgument(f"Invalid fault settings: {_problems(exc)}") from None


@router.get("/emulator/v1/faults")
def get_faults(request: Request) -> dict[str, Any]:
    """The fault settings in force."""
    return _injector(request).settings.to_json()


@router.put("/emulator/v1/faults")
async def put_faults(request: Request) -> dict[str, Any]:
    """Replace every fault setting at once; what is left out returns to its default (no fault)."""
    settings = parse_settings(await request.body())
    injector = _injector(request)
    injector.configure(settings)
    return injector.settings.to_json()
