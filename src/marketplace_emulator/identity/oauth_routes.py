"""The OAuth 2.0 endpoints over HTTP: `POST /token` (the key's `token_uri`), the control endpoint
that makes a service-account key, and the OIDC certificates of signed push.

The server is `request.app.state.emulator.oauth` (`identity.oauth.OAuthServer`).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace_emulator import errors
from marketplace_emulator.identity.oauth import (
    DEFAULT_ACCOUNT,
    DEFAULT_PROJECT,
    KEYS_PATH,
    OIDC_JWK_PATH,
    OIDC_X509_PATH,
    TOKEN_PATH,
    OAuthError,
    OAuthServer,
)

router = APIRouter(tags=["oauth"])

_NAME = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"  # Google's service-account id rule


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(DEFAULT_ACCOUNT, pattern=_NAME)
    project: str = Field(DEFAULT_PROJECT, min_length=1)
    scopes: list[str] | None = None
    providers: list[str] | None = None


def _server(request: Request) -> OAuthServer:
    return cast(OAuthServer, request.app.state.emulator.oauth)


def token_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + TOKEN_PATH


@router.post(TOKEN_PATH)
async def token(request: Request) -> JSONResponse:
    """The JWT-bearer grant: a form with `grant_type` and `assertion`."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    try:
        granted = _server(request).exchange(form, token_url(request))
    except OAuthError as exc:
        return JSONResponse(exc.to_json(), status_code=400)
    return JSONResponse(granted, headers={"Cache-Control": "no-store"})


@router.post(KEYS_PATH)
async def create_key(request: Request) -> dict[str, Any]:
    """A new service-account key file whose `token_uri` is this emulator's token endpoint
    (`{name?, project?, scopes?, providers?}`: limited to those scopes, linked to those
    providers; any when absent)."""
    try:
        body = KeyRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        raise errors.InvalidArgument(f"Invalid key request: {exc.errors()[0]['msg']}") from None
    return _server(request).create_key(
        token_url(request),
        name=body.name,
        project=body.project,
        scopes=body.scopes,
        providers=body.providers,
    )


@router.get(OIDC_X509_PATH)
def oidc_x509(request: Request) -> dict[str, str]:
    """`{kid: PEM certificate}` of the key that signs push requests' OIDC tokens."""
    return _server(request).oidc_certificates()


@router.get(OIDC_JWK_PATH)
def oidc_jwk(request: Request) -> dict[str, Any]:
    """The same key as a JWK Set."""
    return _server(request).oidc_jwks()
