"""The sign-up JWT issuer: claims, header, signature, and the x509 and JWK key endpoints."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from google.auth import jwt
from starlette.exceptions import StarletteDeprecationWarning

from marketplace_emulator.clock import Clock
from marketplace_emulator.errors import install_error_handlers
from marketplace_emulator.identity import ISSUER, IdentityIssuer, router
from marketplace_emulator.identity.models import JWK_PATH, X509_PATH

with warnings.catch_warnings():  # Starlette asks for httpx2, which the project does not install
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISS = (
    "https://www.googleapis.com/robot/v1/metadata/x509/"
    "cloud-commerce-partner@system.gserviceaccount.com"
)


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        )
        return decoded

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def test_token_carries_googles_header_and_claims() -> None:
    issuer = IdentityIssuer(Clock(now=lambda: T0))
    header, claims = segments(issuer.mint("acct-1", "app.example.com"))
    assert header == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}
    assert ISSUER == ISS
    assert claims["iss"] == ISS
    assert claims["aud"] == "app.example.com"
    assert claims["sub"] == "acct-1"
    assert claims["iat"] == int(T0.timestamp())
    assert claims["exp"] == claims["iat"] + 300
    assert claims["google"]["user_identity"]
    assert isinstance(claims["google"]["roles"], list)
    assert "orders" not in claims["google"]


def test_optional_claims_are_passed_through() -> None:
    issuer = IdentityIssuer(Clock(now=lambda: T0))
    token = issuer.mint(
        "acct-1",
        "aud",
        ttl_seconds=60,
        user_identity="u-9",
        roles=["billing_admin"],
        orders=["order-1", "order-2"],
        extra={"email": "x@example.com"},
    )
    _, claims = segments(token)
    assert claims["exp"] - claims["iat"] == 60
    assert claims["google"] == {
        "user_identity": "u-9",
        "roles": ["billing_admin"],
        "orders": ["order-1", "order-2"],
    }
    assert claims["email"] == "x@example.com"


def test_the_default_user_identity_is_stable_per_account() -> None:
    issuer = IdentityIssuer(Clock())
    first = segments(issuer.mint("acct-1", "a"))[1]["google"]["user_identity"]
    again = segments(issuer.mint("acct-1", "a"))[1]["google"]["user_identity"]
    other = segments(issuer.mint("acct-2", "a"))[1]["google"]["user_identity"]
    assert first == again != other


def test_signature_verifies_against_the_x509_certificate() -> None:
    issuer = IdentityIssuer(Clock())
    token = issuer.mint("acct-1", "app.example.com")
    claims = jwt.decode(token, certs=issuer.x509_certificates(), audience="app.example.com")
    assert claims["sub"] == "acct-1"
    with pytest.raises(ValueError):
        jwt.decode(token, certs=issuer.x509_certificates(), audience="other.example.com")


def test_the_key_is_generated_once_and_shared_by_issuers() -> None:
    assert IdentityIssuer(Clock()).kid == IdentityIssuer(Clock()).kid


def test_the_jwk_is_the_certificates_public_key() -> None:
    issuer = IdentityIssuer(Clock())
    [jwk] = issuer.jwks()["keys"]
    [(kid, pem)] = issuer.x509_certificates().items()
    cert_key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    assert isinstance(cert_key, rsa.RSAPublicKey)

    def as_int(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    assert jwk["kid"] == kid
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert as_int(jwk["n"]) == cert_key.public_numbers().n
    assert as_int(jwk["e"]) == cert_key.public_numbers().e


# -- over HTTP (in-process) ------------------------------------------------------------------


class _Procurement:
    def find_accounts(self, account_id: str) -> list[str]:
        return [account_id] if account_id == "acct-1" else []


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.emulator = SimpleNamespace(
        identity=IdentityIssuer(Clock()), procurement=_Procurement()
    )
    return TestClient(app)


def test_signup_tokens_endpoint_mints_a_verifiable_token(client: TestClient) -> None:
    response = client.post(
        "/emulator/v1/signupTokens",
        json={"account": "providers/DEMO-p/accounts/acct-1", "audience": "aud", "orders": ["o1"]},
    )
    assert response.status_code == 200
    certs = client.get(X509_PATH).json()
    claims = jwt.decode(response.json()["token"], certs=certs, audience="aud")
    assert claims["sub"] == "acct-1"
    assert claims["google"]["orders"] == ["o1"]


def test_signup_token_for_an_unknown_account_is_not_found(client: TestClient) -> None:
    response = client.post("/emulator/v1/signupTokens", json={"account": "nope", "audience": "a"})
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [
        {"audience": "a"},
        {"account": "acct-1"},
        {"account": "acct-1", "audience": "a", "ttlSeconds": 0},
        {"account": "acct-1", "audience": "a", "roles": "admin"},
        {"account": "acct-1", "audience": "a", "bogus": 1},
        [],
    ],
)
def test_bad_signup_token_requests_are_invalid_argument(client: TestClient, body: Any) -> None:
    response = client.post("/emulator/v1/signupTokens", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_certificate_endpoints_serve_x509_and_jwk(client: TestClient) -> None:
    [(kid, pem)] = client.get(X509_PATH).json().items()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert client.get(JWK_PATH).json()["keys"][0]["kid"] == kid
