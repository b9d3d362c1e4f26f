"""`serve --require-auth`: Procurement and Service Control calls need a valid OAuth access token
carrying a scope that Google's discovery document names for the method.

    no token, or one the emulator did not issue, or expired   -> 401 UNAUTHENTICATED
    a valid token without any of the method's scopes          -> 403 PERMISSION_DENIED
    a token whose key is not linked to the provider named     -> 403 PERMISSION_DENIED
      in the path ("Permission '...' denied on resource 'providers/X' (or it may not exist).")

both in Google's error envelope, with Google's messages; the 403 carries an `ErrorInfo` detail
(`reason` `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, the method, and the scopes it accepts). The token
comes from `Authorization: Bearer` or the `access_token` query parameter. The method's scopes are
read from the discovery documents bundled with `google-api-python-client`.

A plain ASGI middleware installed only when authentication is required, so that the default
(anonymous) emulator pays nothing for it. It sits outside the fault middleware: Google checks
credentials before anything else.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace_emulator.errors import error_body
from marketplace_emulator.identity.oauth import OAuthServer

DISCOVERY = ("cloudcommerceprocurement.v1.json", "servicecontrol.v1.json")
PREFIXES = ("/v1/providers/", "/v1/services/")
MISSING = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INSUFFICIENT = "Request had insufficient authentication scopes."


@cache
def method_scopes() -> tuple[tuple[str, re.Pattern[str], str, str, frozenset[str]], ...]:
    """(HTTP method, path pattern, method id, API host, scopes) of every discovery method."""
    found = []
    package = resources.files("googleapiclient") / "discovery_cache" / "documents"
    for name in DISCOVERY:
        document: dict[str, Any] = json.loads((package / name).read_text(encoding="utf-8"))
        host = document["rootUrl"].split("//", 1)[1].rstrip("/")
        stack = [document]
        while stack:
            node = stack.pop()
            stack.extend(node.get("resources", {}).values())
            for method in node.get("methods", {}).values():
                parts = re.split(r"\{[^}]+\}", method["flatPath"])
                pattern = re.compile("^/" + "[^/:]+".join(map(re.escape, parts)) + "$")
                scopes = frozenset(method.get("scopes", ()))
                found.append((method["httpMethod"], pattern, method["id"], host, scopes))
    return tuple(found)


def required_scopes(http_method: str, path: str) -> tuple[str, str, frozenset[str]] | None:
    """(method id, API host, accepted scopes) of the discovery method serving this request."""
    for verb, pattern, method_id, host, scopes in method_scopes():
        if verb == http_method and pattern.match(path):
            return method_id, host, scopes
    return None


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" else ""
    query: bytes = scope.get("query_string", b"")
    for pair in query.decode("latin-1").split("&"):
        key, _, found = pair.partition("=")
        if key == "access_token":
            return found
    return ""


async def _refuse(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="https://accounts.google.com/"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


class RequireAuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if not path.startswith(PREFIXES):
            await self.app(scope, receive, send)
            return
        server: OAuthServer = scope["app"].state.emulator.oauth
        token = _bearer(scope)
        if not token:
            await _refuse(send, 401, error_body(401, MISSING, "UNAUTHENTICATED"))
            return
        granted = server.lookup(token)
        if granted is None:
            await _refuse(send, 401, error_body(401, INVALID, "UNAUTHENTICATED"))
            return
        needed = required_scopes(scope["method"], path)
        if needed is not None and not (needed[2] & granted.scopes):
            method_id, host, scopes = needed
            body = error_body(403, INSUFFICIENT, "PERMISSION_DENIED")
            body["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "method": method_id,
                        "service": host,
                        "acceptedScopes": " ".join(sorted(scopes)),
                    },
                }
            ]
            await _refuse(send, 403, body)
            return
        provider = _provider(path)
        if provider is not None and not granted.may_act_for(provider):
            permission = _permission(needed[0] if needed else "")
            message = (
                f"Permission '{permission}' denied on resource 'providers/{provider}' "
                "(or it may not exist)."
            )
            await _refuse(send, 403, error_body(403, message, "PERMISSION_DENIED"))
            return
        await self.app(scope, receive, send)


def _provider(path: str) -> str | None:
    if not path.startswith("/v1/providers/"):
        return None
    return path.split("/")[3]


def _permission(method_id: str) -> str:
    """The IAM permission Google names for a Procurement method (reference 1.3; for list,
    reject, reset and patch the names are unconfirmed)."""
    parts = method_id.split(".")  # cloudcommerceprocurement.providers.entitlements.get
    if len(parts) < 4:
        return "commerceprocurement.providers.get"
    kind = {"accounts": "providerAccounts", "entitlements": "providerEntitlements"}[parts[2]]
    verb = {"approvePlanChange": "approve", "rejectPlanChange": "reject", "patch": "update"}
    return f"commerceprocurement.{kind}.{verb.get(parts[3], parts[3])}"


def install_require_auth(app: FastAPI) -> None:
    """Require OAuth tokens on `app`'s Google API routes (install after the fault middleware)."""
    app.add_middleware(RequireAuthMiddleware)
