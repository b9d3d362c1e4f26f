"""What every request and answer of the backend passes through (docs/security.md).

One plain ASGI middleware, in front of every route:

- **Body caps, checked before reading**: a declared `Content-Length` over the path's cap is
  answered 413 at once; a body sent without one (chunked) is counted as it is read, and reading
  stops with 413 at the cap. Caps: `/pubsub/push` 10 MiB (Pub/Sub's own push limit), `/v1/usage`
  `USAGE_MAX_BATCH` records of 2 KiB, everything else (sign-up forms, console forms, `/api/v1`)
  64 KiB.
- **Origin check on console writes**: a POST (or PUT, PATCH, DELETE) under `/admin` or `/api/v1`
  whose `Origin` is not this site's own is refused with 403, whatever its CSRF token (a second
  layer beside it). A request without `Origin` passes to the CSRF check.
- **No NUL in the URL**: a path or query string holding NUL (`%00`) is refused with 400 before
  any route sees it (PostgreSQL cannot even compare a text column with it).
- **Headers on every answer**: nosniff, no framing, same-origin referrers, the console's
  Content-Security-Policy, `no-store` (static files excepted), and outside the sandbox HSTS
  (`HSTS_MAX_AGE`, 0 leaves it to a proxy). A header a route set itself is kept.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from marketplace_saas.config import Settings

PUSH_BODY_LIMIT = 10 * 1024 * 1024
USAGE_BYTES_PER_RECORD = 2048  # `/v1/usage` takes USAGE_MAX_BATCH records of this size
DEFAULT_BODY_LIMIT = 64 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONSOLE_PREFIXES = ("/admin", "/api/v1")
STATIC_PREFIXES = ("/static/", "/admin/static/")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "content-security-policy": CSP,
}


class BodyTooLarge(HTTPException):
    """The request body is over its path's cap (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit} bytes")


def body_limit(path: str, settings: Settings) -> int:
    """The largest body `path` takes, in bytes."""
    if path == "/pubsub/push":
        return PUSH_BODY_LIMIT
    if path == "/v1/usage":
        return settings.usage_max_batch * USAGE_BYTES_PER_RECORD
    return DEFAULT_BODY_LIMIT


def answer_headers(path: str, settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = dict(HEADERS)
    if not path.startswith(STATIC_PREFIXES):
        headers["cache-control"] = "no-store"
    if not settings.sandbox and settings.hsts_max_age > 0:
        headers["strict-transport-security"] = f"max-age={settings.hsts_max_age}"
    return [(name.encode(), value.encode()) for name, value in headers.items()]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _host_port(netloc: str, scheme: str) -> str | None:
    """`host:port` of a netloc, the scheme's default port filled in; None when malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    return f"{parts.hostname or ''}:{port or (443 if scheme == 'https' else 80)}"


def foreign_origin(scope: Scope) -> str | None:
    """The request's `Origin` when it is another site's (None when absent or our own)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return None
    host = _header(scope, b"host") or ""
    parts = urlsplit(origin)
    if origin == "null" or not parts.netloc or not host:
        return origin
    # The scheme may differ behind a TLS proxy: the host and port decide.
    own = _host_port(host, parts.scheme)
    theirs = _host_port(parts.netloc, parts.scheme)
    return None if own is not None and theirs == own else origin


async def _refuse(
    send: Send, path: str, status: int, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    """A JSON refusal in the shape of the path's API (the console API's, or FastAPI's)."""
    if path.startswith("/api/"):
        document: object = {"error": {"code": status, "message": message}}
    else:
        document = {"detail": message}
    body = json.dumps(document).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Body caps, the console's Origin check, and the security headers (module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = answer_headers(path, self.settings)
        if scope["method"] in UNSAFE_METHODS and path.startswith(CONSOLE_PREFIXES):
            origin = foreign_origin(scope)
            if origin is not None:
                message = f"refused: this request came from another site (Origin {origin[:200]})"
                await _refuse(send, path, 403, message, extra)
                return
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            await _refuse(send, path, 400, "the URL holds a NUL character", extra)
            return
        limit = body_limit(path, self.settings)
        declared = _header(scope, b"content-length")
        if declared is not None and not declared.isdigit():
            await _refuse(send, path, 400, "the Content-Length header is not a number", extra)
            return
        if declared is not None and int(declared) > limit:
            await _refuse(send, path, 413, BodyTooLarge(limit).detail, extra)
            return
        started = False
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", ())}
                headers = list(message.get("headers", ()))
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counted, with_headers)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(send, path, 413, exc.detail, extra)
