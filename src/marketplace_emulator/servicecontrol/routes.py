"""Service Control over HTTP: v1 `POST /v1/services/{service}:check` and `:report`, v2
`POST /v2/services/{service}:check` and `:report`, and the control endpoints listing what was
accepted.

The backends are `request.app.state.emulator.servicecontrol` and `...servicecontrol_v2`.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request

from marketplace_emulator.servicecontrol import responses
from marketplace_emulator.servicecontrol.exceptions import MAX_REQUEST_BYTES, PayloadTooLarge
from marketplace_emulator.servicecontrol.models import ServiceControlBackend
from marketplace_emulator.servicecontrol.v2 import ServiceControlV2

router = APIRouter()


def _backend(request: Request) -> ServiceControlBackend:
    return cast(ServiceControlBackend, request.app.state.emulator.servicecontrol)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON body, refused unread when it announces more than the 1 MB limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(size)
        chunks.append(chunk)
    return responses.load_json(b"".join(chunks))


@router.post("/v1/services/{service_name}:check")
async def check(service_name: str, request: Request) -> dict[str, Any]:
    return _backend(request).check(service_name, await _body(request))


@router.post("/v1/services/{service_name}:report")
async def report(service_name: str, request: Request) -> dict[str, Any]:
    return _backend(request).report(service_name, await _body(request))


def _v2(request: Request) -> ServiceControlV2:
    return cast(ServiceControlV2, request.app.state.emulator.servicecontrol_v2)


@router.post("/v2/services/{service_name}:check")
async def check_v2(service_name: str, request: Request) -> dict[str, Any]:
    return _v2(request).check(service_name, await _body(request))


@router.post("/v2/services/{service_name}:report")
async def report_v2(service_name: str, request: Request) -> dict[str, Any]:
    return _v2(request).report(service_name, await _body(request))


@router.get("/emulator/v1/services/{service_name}/v2Reports")
def service_reports_v2(service_name: str, request: Request) -> dict[str, Any]:
    """Every v2 operation received for one service, in order (recorded, not billed)."""
    return {"reports": _v2(request).reports(service_name)}


@router.get("/emulator/v1/services/{service_name}/reports")
def service_reports(service_name: str, request: Request) -> dict[str, Any]:
    """Every operation accepted for one service, in the order accepted."""
    return {"reports": [a.to_json() for a in _backend(request).accepted_reports(service_name)]}


@router.get("/emulator/v1/reports")
def all_reports(request: Request) -> dict[str, Any]:
    """Every operation accepted, for every service, in the order accepted."""
    return {"reports": [a.to_json() for a in _backend(request).accepted_reports()]}
