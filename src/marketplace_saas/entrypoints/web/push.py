"""`POST /pubsub/push`: Pub/Sub's push delivery, into the same code as the listener.

    {"message": {"data": "<base64>", "messageId": "...", "attributes": {...}, "publishTime": ...},
     "subscription": "projects/.../subscriptions/..."}

Answers: 200 when the lifecycle service says ACK (Pub/Sub then deletes the message), 503 when it
says NACK (Pub/Sub retries with its backoff), 400 when the body is not a push envelope, 401/403
when the OIDC token check is configured (`PUSH_AUDIENCE`) and the token is missing or wrong, 413
over Pub/Sub's 10 MiB (`guards`). Outside the sandbox the endpoint answers 404 (disabled) unless
both PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT are set (`push_auth_missing`; `serve` refuses to run
push-only without them): an audience alone accepts a token any Google service account can mint.
The token must be signed by a certificate at `PUSH_CERTS_URL` (Google's by default), issued by
`accounts.google.com`, for that audience, unexpired, and (with `PUSH_SERVICE_ACCOUNT`) for that
service account with a verified email.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from google.auth import exceptions as google_auth_exceptions
from google.auth import transport
from google.oauth2 import id_token

from marketplace_saas.domain.text import is_storable
from marketplace_saas.entrypoints.delivery import deliver
from marketplace_saas.service.procurement.inbox import Disposition

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container
    from marketplace_saas.config import Settings

router = APIRouter()
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
log = structlog.get_logger(__name__)


class EnvelopeError(ValueError):
    """The request body is not a Pub/Sub push envelope."""


def push_auth_missing(settings: Settings) -> str | None:
    """Why the push endpoint is disabled (outside the sandbox, without push authentication)."""
    if settings.sandbox:
        return None
    missing = [
        name
        for name, value in (
            ("PUSH_AUDIENCE", settings.push_audience),
            ("PUSH_SERVICE_ACCOUNT", settings.push_service_account),
        )
        if not value
    ]
    if not missing:
        return None
    return (
        "the push endpoint /pubsub/push is disabled: outside the sandbox it requires Pub/Sub's "
        f"OIDC token; set {' and '.join(missing)} (the push subscription's audience and service "
        "account), or receive notifications with the pull listener"
    )


def parse_envelope(body: bytes) -> tuple[Mapping[str, Any], str | None]:
    """(message, messageId) of a push envelope, or EnvelopeError with the reason."""
    try:
        envelope = json.loads(body)
    except RecursionError:
        raise EnvelopeError("the body is not JSON: it nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"the body is not JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise EnvelopeError("the body is not a JSON object")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise EnvelopeError("the envelope has no `message` object")
    message_id = message.get("messageId", message.get("message_id"))
    if message_id is not None and not isinstance(message_id, str):
        raise EnvelopeError("`message.messageId` is not a string")
    if message_id is not None and not is_storable(message_id):
        raise EnvelopeError("`message.messageId` is not valid Unicode text")
    data = message.get("data", "")
    if not isinstance(data, str):
        raise EnvelopeError("`message.data` is not a base64 string")
    return message, message_id


def decode_data(message: Mapping[str, Any]) -> bytes:
    """The notification bytes; EnvelopeError when `data` is not valid base64."""
    data = str(message.get("data", ""))
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"`message.data` is not valid base64: {exc}") from exc


class CachingRequest:
    """A google-auth transport that caches GET answers (Google's signing certificates)."""

    def __init__(self, inner: transport.Request | None = None, ttl: float = 300.0) -> None:
        if inner is None:
            from google.auth.transport.requests import Request as RequestsRequest

            inner = RequestsRequest()
        self.inner = inner
        self.ttl = ttl
        self._cache: dict[str, tuple[float, transport.Response]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> transport.Response:
        if method != "GET":
            answer: transport.Response = self.inner(url, method=method, **kwargs)
            return answer
        with self._lock:
            hit = self._cache.get(url)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        response: transport.Response = self.inner(url, method=method, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic(), response)
        return response


def check_token(
    settings: Settings, authorization: str | None, request: transport.Request
) -> tuple[int, str] | None:
    """None when the push is authorised; else (HTTP status, reason)."""
    if not settings.push_audience:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return 401, "a bearer OIDC token is required"
    try:
        claims = id_token.verify_token(
            token, request, audience=settings.push_audience, certs_url=settings.push_certs_url
        )
    except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
        return 401, f"invalid OIDC token: {exc}"
    if claims.get("iss") not in GOOGLE_ISSUERS:
        return 401, f"invalid OIDC token: issuer {claims.get('iss')!r} is not Google's"
    expected = settings.push_service_account
    if expected and (claims.get("email") != expected or not claims.get("email_verified")):
        return 403, "the OIDC token was not issued to the configured push service account"
    return None


def _oidc_transport(request: Request) -> transport.Request:
    state = request.app.state
    if getattr(state, "oidc_transport", None) is None:
        state.oidc_transport = CachingRequest()
    return state.oidc_transport  # type: ignore[no-any-return]


@router.post("/pubsub/push")
async def pubsub_push(request: Request) -> JSONResponse:
    container: Container = request.app.state.container
    settings = container.settings
    disabled = push_auth_missing(settings)
    if disabled is not None:
        log.warning("push.disabled", reason=disabled)
        return JSONResponse({"error": disabled}, status_code=404)
    if settings.push_audience:
        denied = await run_in_threadpool(
            check_token, settings, request.headers.get("authorization"), _oidc_transport(request)
        )
        if denied is not None:
            log.warning("push.unauthorised", reason=denied[1])
            return JSONResponse({"error": denied[1]}, status_code=denied[0])
    body = await request.body()
    try:
        message, message_id = parse_envelope(body)
    except EnvelopeError as exc:
        log.warning("push.bad_envelope", reason=str(exc))
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        data = decode_data(message)
    except EnvelopeError as exc:
        # It will never become valid: record it (as invalid) so it is visible, then refuse it.
        raw = str(message.get("data", "")).encode("utf-8", "replace")
        await run_in_threadpool(deliver, container, raw, message_id=message_id, source="push")
        log.warning("push.bad_data", reason=str(exc), message_id=message_id)
        return JSONResponse({"error": str(exc)}, status_code=400)
    disposition = await run_in_threadpool(
        deliver, container, data, message_id=message_id, source="push"
    )
    if disposition is Disposition.ACK:
        return JSONResponse({"status": "ack"}, status_code=200)
    return JSONResponse({"status": "nack", "error": "retry later"}, status_code=503)
