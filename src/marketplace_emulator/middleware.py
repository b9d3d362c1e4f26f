"""Fault injection in front of the emulated Google APIs, and a short path for the hot calls.

For procurement calls (`/v1/providers/...`) and Service Control calls (`/v1/services/...`,
`/v2/services/...`), the
middleware first waits the configured latency, then, at the configured seeded rate, answers one of
the configured HTTP statuses in Google's error envelope instead of serving the call (the call has no
effect). Control endpoints (`/emulator/v1/...`) and the identity endpoints are never faulted.

A plain ASGI middleware, so that unfaulted requests pay one string comparison and nothing else.
Install it with `install_fault_middleware(app)`; it reads `app.state.emulator.faults`.

Behind it, `HotRouteMiddleware` serves the calls a provider's backend makes for every notification
(see `procurement.routes.hot_endpoint`) straight from their handler: the same handler, the same
response, and an `ApiError` answered as the app's error handler answers it, without FastAPI's
router, dependency solving and per-route wrapping (about a third of such a call's CPU). Install
it with `install_hot_routes(app, match)` before the fault middleware, so faults still apply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace_emulator.errors import STATUS_OF_HTTP, ApiError, error_body
from marketplace_emulator.faults import Api, FaultInjector

_PREFIXES: tuple[tuple[str, Api], ...] = (
    ("/v1/providers/", "procurement"),
    ("/v1/services/", "servicecontrol"),
    ("/v2/services/", "servicecontrol"),
)
_MESSAGES = {
    "RESOURCE_EXHAUSTED": "Quota exceeded (injected fault).",
    "UNAVAILABLE": "The service is currently unavailable (injected fault).",
    "INTERNAL": "Internal error encountered (injected fault).",
    "DEADLINE_EXCEEDED": "The request deadline was exceeded (injected fault).",
}


def api_of(path: str) -> Api | None:
    """Which emulated Google API a request path belongs to, if any."""
    for prefix, api in _PREFIXES:
        if path.startswith(prefix):
            return api
    return None


def injected_error(status: int) -> bytes:
    """The body of an injected error: Google's envelope, status name matching the HTTP code."""
    name = STATUS_OF_HTTP.get(status, "UNKNOWN")
    message = _MESSAGES.get(name, f"Injected fault: HTTP {status}.")
    return json.dumps(error_body(status, message, name)).encode()


class FaultMiddleware:
    def __init__(
        self, app: ASGIApp, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.app = app
        self.sleep = sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = api_of(scope["path"]) if scope["type"] == "http" else None
        if api is None:
            await self.app(scope, receive, send)
            return
        faults: FaultInjector = scope["app"].state.emulator.faults
        latency = faults.latency_seconds(api)
        if latency > 0:
            await self.sleep(latency)
        status = faults.injected_status(api)
        if status is None:
            await self.app(scope, receive, send)
            return
        body = injected_error(status)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install_fault_middleware(app: FastAPI) -> None:
    """Put fault injection in front of `app`'s procurement and Service Control routes."""
    app.add_middleware(FaultMiddleware)


HotMatch = Callable[[Scope], Callable[[Request], Awaitable[JSONResponse]] | None]


class HotRouteMiddleware:
    def __init__(self, app: ASGIApp, match: HotMatch) -> None:
        self.app = app
        self.match = match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.match(scope) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await endpoint(Request(scope, receive, send))
        except ApiError as exc:
            response = exc.response()
        await response(scope, receive, send)


def install_hot_routes(app: FastAPI, match: HotMatch) -> None:
    """Serve the calls `match` recognises without the router (install before the faults)."""
    app.add_middleware(HotRouteMiddleware, match=match)
