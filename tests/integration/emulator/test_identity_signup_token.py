"""Sign-up tokens over real HTTP, verified by google-auth against the emulator's certificate URL."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import google.auth.transport.requests
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import id_token

from marketplace_emulator.events import RecordingSink
from marketplace_emulator.identity.models import ISSUER, JWK_PATH, X509_PATH
from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread

pytestmark = pytest.mark.integration

AUDIENCE = "app.example.com"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    emulator = Emulator(sink=RecordingSink())
    server = run_in_thread(emulator)
    yield server
    server.stop()
    emulator.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_google_auth_verifies_a_minted_token_against_the_x509_url(
    running: RunningEmulator, session: requests.Session
) -> None:
    account, entitlement = running.emulator.procurement.purchase(
        "DEMO-id", "example-product", "basic"
    )
    response = session.post(
        f"{running.url}/emulator/v1/signupTokens",
        json={"account": account.id, "audience": AUDIENCE, "orders": [entitlement.id]},
        timeout=5,
    )
    assert response.status_code == 200
    claims = id_token.verify_token(
        response.json()["token"],
        google.auth.transport.requests.Request(session),
        audience=AUDIENCE,
        certs_url=running.url + X509_PATH,
    )
    assert claims["iss"] == ISSUER
    assert claims["sub"] == account.id
    assert claims["exp"] == claims["iat"] + 300
    assert claims["google"]["orders"] == [entitlement.id]
    assert claims["google"]["user_identity"]


def test_a_token_for_another_audience_fails_verification(
    running: RunningEmulator, session: requests.Session
) -> None:
    account, _ = running.emulator.procurement.purchase("DEMO-id", "example-product", "basic")
    token = session.post(
        f"{running.url}/emulator/v1/signupTokens",
        json={"account": account.id, "audience": "someone-else.example.com"},
        timeout=5,
    ).json()["token"]
    with pytest.raises(ValueError, match="audience"):
        id_token.verify_token(
            token,
            google.auth.transport.requests.Request(session),
            audience=AUDIENCE,
            certs_url=running.url + X509_PATH,
        )


def test_signup_token_for_an_unknown_account_is_404(
    running: RunningEmulator, session: requests.Session
) -> None:
    response = session.post(
        f"{running.url}/emulator/v1/signupTokens",
        json={"account": "no-such-account", "audience": AUDIENCE},
        timeout=5,
    )
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_the_jwk_endpoint_serves_the_certificates_key(
    running: RunningEmulator, session: requests.Session
) -> None:
    certs = session.get(running.url + X509_PATH, timeout=5).json()
    [jwk] = session.get(running.url + JWK_PATH, timeout=5).json()["keys"]
    public = x509.load_pem_x509_certificate(certs[jwk["kid"]].encode()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big")
    assert n == public.public_numbers().n
