"""The sign-up JWT issuer over HTTP: the certificate endpoints Google serves at the token's `iss`,
and `POST /emulator/v1/signupTokens` to mint a token for an existing procurement account.

The issuer is `request.app.state.emulator.identity`; accounts are looked up in
`request.app.state.emulator.procurement`.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace_emulator import errors
from marketplace_emulator.identity.models import (
    DEFAULT_TTL_SECONDS,
    JWK_PATH,
    X509_PATH,
    IdentityIssuer,
)

router = APIRouter()


class AccountLookup(Protocol):
    def find_accounts(self, account_id: str) -> list[Any]: ...

    def account_orders(self, provider_id: str, account_id: str) -> list[str]: ...


class SignupTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    account: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    ttl_seconds: int = Field(DEFAULT_TTL_SECONDS, alias="ttlSeconds", ge=1, le=86_400)
    user_identity: str | None = Field(None, alias="userIdentity", min_length=1)
    roles: list[str] | None = None
    orders: list[str] | None = None


def _issuer(request: Request) -> IdentityIssuer:
    return cast(IdentityIssuer, request.app.state.emulator.identity)


def _account_id(account: str) -> str:
    """The account id, given either bare or as `providers/{p}/accounts/{id}`."""
    parts = account.split("/")
    if len(parts) == 4 and parts[0] == "providers" and parts[2] == "accounts":
        return parts[3]
    return account


@router.get(X509_PATH)
def x509_certificates(request: Request) -> dict[str, str]:
    """`{kid: PEM certificate}`: what a verifier fetches from the token's `iss` URL."""
    return _issuer(request).x509_certificates()


@router.get(JWK_PATH)
def jwk_certificates(request: Request) -> dict[str, Any]:
    """The same signing key as a JWK Set."""
    return _issuer(request).jwks()


@router.post("/emulator/v1/signupTokens")
async def signup_token(request: Request) -> dict[str, str]:
    """Mint the JWT Google would post to the provider's sign-up URL for this account."""
    try:
        body = SignupTokenRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise errors.InvalidArgument(f"Invalid signup token request: {problems}") from None
    account_id = _account_id(body.account)
    procurement = cast(AccountLookup, request.app.state.emulator.procurement)
    accounts = procurement.find_accounts(account_id)
    if not accounts:
        raise errors.NotFound(f"Account {body.account!r} does not exist.")
    orders = body.orders
    if orders is None:  # the account's orders (several per account: one per entitlement)
        derived = [o for a in accounts for o in procurement.account_orders(a.provider, account_id)]
        orders = derived or None
    token = _issuer(request).mint(
        account_id,
        body.audience,
        ttl_seconds=body.ttl_seconds,
        user_identity=body.user_identity,
        roles=body.roles,
        orders=orders,
    )
    return {"token": token}
