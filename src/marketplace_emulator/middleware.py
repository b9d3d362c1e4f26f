"""Fault injection in front of the emulated Google APIs, and a short path for the hot calls.

For procurement calls (`/v1/providers/...`) and Service Control calls (`/v1/services/...`,
`/v2/services/...`), the
middleware first waits the configured latency, then, at the configured seeded rate, answers one of
the configured HTTP statuses in Google's error envelope instead of serving the call (the call has no
effect). A Procurement call of a provider named in `forgetProviders` is answered as if the API had
lost that provider's data (`forgotten_answer`: empty lists, 404 for the rest). Control endpoints
(`/emulator/v1/...`) and the identity endpoints are never faulted.

A plain ASGI middleware, so that unfaulted requests pay one string comparison and nothing else.
Install it with `install_fault_middleware(app)`; it reads `app.state.emulator.faults`.

Behind it, `HotRouteMiddleware` serves the calls a provider's backend makes for every notification
(see `procurement.routes.hot_endpoint`) straight from their handler: the same handler, the same
response, and an `ApiError` answered as the app's error handler answers it, without FastAPI's
router, dependency solving and per-route wrapping (about a third of such a call's CPU). Install
it with `install_hot_routes(app, match)` before the fault middleware, so faults still apply.

`ControlGuardMiddleware` keeps web pages a developer visits from driving the control API
(`/emulator/v1/...`, unauthenticated as a local tool should be): a POST, PUT, PATCH or DELETE
there is refused with 403 when its `Origin` is another site's (a page served by the emulator
itself, or a client that sends no `Origin`, passes), and with 415 when it declares a
`Content-Type` other than JSON (`text/plain` and form posts are what a cross-site page can send
without asking). Install it with `install_control_guard(app)`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

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


_PROVIDERS = "/v1/providers/"
_LISTS = frozenset({"accounts", "entitlements"})


def _provider_call(path: str) -> tuple[str, list[str]]:
    """(provider, the path's segments after it) of a Procurement path."""
    provider, _, rest = path.removeprefix(_PROVIDERS).partition("/")
    return provider, [s for s in rest.split("/") if s]


def forgotten_answer(method: str, path: str) -> tuple[int, bytes]:
    """What Procurement answers about a provider whose data it lost: a list call finds nothing
    (`{}`, as for a provider with no customers); any other call, 404 NOT_FOUND for its resource."""
    provider, rest = _provider_call(path)
    if method == "GET" and len(rest) == 1 and rest[0] in _LISTS:
        return 200, b"{}"
    kind = "Account" if rest[:1] == ["accounts"] else "Entitlement"
    name = "/".join(rest[:2]).split(":", 1)[0]
    message = f"{kind} providers/{provider}/{name} not found."
    return 404, json.dumps(error_body(404, message, "NOT_FOUND")).encode()


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
        if status is not None:
            body = injected_error(status)
        elif api == "procurement" and faults.forgets(_provider_call(scope["path"])[0]):
            status, body = forgotten_answer(scope["method"], scope["path"])
        else:
            await self.app(scope, receive, send)
            return
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


CONTROL_PREFIX = "/emulator/v1/"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _authority(netloc: str, scheme: str) -> str | None:
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    return f"{parts.hostname or ''}:{port or (443 if scheme == 'https' else 80)}"


def control_refusal(scope: Scope) -> tuple[int, str] | None:
    """(status, reason) when a control request must be refused; None when it may proceed."""
    if scope["method"] not in _UNSAFE or not scope["path"].startswith(CONTROL_PREFIX):
        return None
    origin = _header(scope, b"origin")
    if origin is not None:
        parts = urlsplit(origin)
        own = _authority(_header(scope, b"host") or "", parts.scheme)
        if origin == "null" or own is None or _authority(parts.netloc, parts.scheme) != own:
            return 403, f"control requests from another site are refused (Origin {origin[:200]})"
    kind = _header(scope, b"content-type")
    if kind is not None:
        media = kind.split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return 415, "control requests take a JSON body (Content-Type: application/json)"
    return None


class ControlGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = control_refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        document = error_body(status, message, STATUS_OF_HTTP.get(status, "UNKNOWN"))
        body = json.dumps(document).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install_control_guard(app: FastAPI) -> None:
    """Refuse cross-site and non-JSON writes to the control API (`ControlGuardMiddleware`)."""
    app.add_middleware(ControlGuardMiddleware)
