"""Bad sign-up input over HTTP: a clear page, the right status, a logged reason, no change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from marketplace_emulator.identity.models import signing_key as emulator_key
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.procurement_errors import ProcurementError, TransientProcurementError
from marketplace_saas.bootstrap import Container
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.signup_support import (
    FORM,
    client,
    csrf_of,
    emulator_token,
    row_counts,
    signup_container,
)
from tests.support.signup_tokens import AUDIENCE as TEST_AUDIENCE
from tests.support.signup_tokens import (
    SigningKey,
    claims,
    mint,
    mint_hs256_with_public_cert,
    mint_unsigned,
    signing_key,
    tamper,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def app_container(make_container: ContainerFactory, emulator_url: str) -> Container:
    return signup_container(make_container, emulator_url)


@pytest.fixture
def account_id(emulator: Emulator) -> str:
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    return account.id


def google_key() -> SigningKey:
    """The emulator's real signing key, as a test key (its certificate is what the URL serves)."""
    key = emulator_key()
    return SigningKey(key.kid, key.private_key, key.certificate_pem)


def _forged_same_kid(account: str) -> str:
    return mint(signing_key("attacker"), claims(account, audience=TEST_AUDIENCE),
                header={"kid": google_key().kid})  # fmt: skip


FORGERIES: dict[str, tuple[Callable[[str], str], str]] = {
    "expired": (lambda a: emulator_token(a, iat=int(time.time()) - 900,
                                         exp=int(time.time()) - 600), "expired"),
    "forged-with-another-key": (_forged_same_kid, "bad_signature"),
    "wrong-audience": (lambda a: emulator_token(a, aud="other.example.com"), "wrong_audience"),
    "wrong-issuer": (lambda a: emulator_token(a, iss="https://evil.example/certs"), "wrong_issuer"),
    "alg-none": (lambda a: mint_unsigned(claims(a, audience=TEST_AUDIENCE)), "bad_algorithm"),
    "hs256-with-the-public-certificate": (
        lambda a: mint_hs256_with_public_cert(google_key(), claims(a, audience=TEST_AUDIENCE)),
        "bad_algorithm",
    ),
    "tampered-payload": (lambda a: tamper(emulator_token(a), sub="someone-else"), "bad_signature"),
    "unknown-kid": (lambda a: mint(signing_key("stranger"), claims(a, audience=TEST_AUDIENCE)),
                    "unknown_kid"),
    "unknown-account": (lambda a: emulator_token("no-such-account"), "unknown_account"),
}  # fmt: skip


@pytest.mark.parametrize("route", ["/signup", "/login"])
@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_refused_token_gets_401_a_logged_reason_and_changes_nothing(
    app_container: Container, account_id: str, case: str, route: str
) -> None:
    forge, reason = FORGERIES[case]
    token = forge(account_id)
    http = client(app_container)
    before = row_counts(app_container)
    with capture_logs() as logs:
        response = http.post(route, data={"x-gcp-marketplace-token": token})
    assert response.status_code == 401
    assert "verify your sign-up link" in response.text
    assert "set-cookie" not in response.headers
    rejected = [e for e in logs if e["event"] == "signup.token_rejected"]
    assert [e["reason"] for e in rejected] == [reason]
    assert all(token not in str(value) for entry in logs for value in entry.values())
    assert row_counts(app_container) == before


@pytest.mark.parametrize("route", ["/signup", "/login"])
def test_no_token_gets_400_explaining_where_signup_starts(
    app_container: Container, route: str
) -> None:
    http = client(app_container)
    for response in (http.post(route, data={}), http.get("/signup")):
        assert response.status_code == 400
        assert "Sign up with provider" in response.text


def _start(http: TestClient, account: str) -> str:
    response = http.post("/signup", data={"x-gcp-marketplace-token": emulator_token(account)})
    assert response.status_code == 200
    return csrf_of(response.text)


def test_invalid_answers_are_shown_inline_with_422_and_nothing_is_saved(
    app_container: Container, account_id: str
) -> None:
    http = client(app_container)
    csrf = _start(http, account_id)
    before = row_counts(app_container)
    bad = {"name": " ", "email": "ada@", "company": "x" * 201, "csrf_token": csrf}
    response = http.post("/signup/complete", data=bad)
    assert response.status_code == 422
    assert "Please enter your name." in response.text
    assert "Please enter an email address like name@company.com." in response.text
    assert "Please keep your company under 200 characters." in response.text
    assert 'aria-invalid="true"' in response.text
    assert row_counts(app_container) == before


def test_a_wrong_csrf_token_is_refused_with_403(app_container: Container, account_id: str) -> None:
    http = client(app_container)
    _start(http, account_id)
    before = row_counts(app_container)
    response = http.post("/signup/complete", data={**FORM, "csrf_token": "forged"})
    assert response.status_code == 403
    assert row_counts(app_container) == before


def test_completing_without_a_valid_session_is_refused_with_401(
    app_container: Container, account_id: str
) -> None:
    """No cookie, or a cookie whose signed content was altered, is an expired session."""
    http = client(app_container)
    csrf = _start(http, account_id)
    before = row_counts(app_container)
    cookie = http.cookies["mps_signup"]
    http.cookies.set("mps_signup", "x" + cookie)
    assert http.post("/signup/complete", data={**FORM, "csrf_token": csrf}).status_code == 401
    http.cookies.clear()
    assert http.post("/signup/complete", data={**FORM, "csrf_token": csrf}).status_code == 401
    assert http.get("/signup/done").status_code == 401
    assert row_counts(app_container) == before


def test_an_unreachable_certificates_endpoint_is_503_not_401(
    make_container: ContainerFactory, account_id: str
) -> None:
    container = make_container(
        signup_audience=TEST_AUDIENCE, signup_certs_url="http://127.0.0.1:9/certs"
    )
    response = client(container).post(
        "/signup", data={"x-gcp-marketplace-token": emulator_token(account_id)}
    )
    assert response.status_code == 503
    assert "Sign-up is briefly unavailable" in response.text


@pytest.mark.parametrize(
    "error",
    [
        TransientProcurementError("unavailable", status_code=503),
        ProcurementError("permission denied", status_code=403, status="PERMISSION_DENIED"),
    ],
    ids=["transient", "refused"],
)
def test_a_procurement_api_failure_is_503_with_nothing_changed(
    app_container: Container, account_id: str, error: ProcurementError
) -> None:
    real = app_container.procurement

    class Failing:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_account(self, account: str) -> None:
            raise error

    app_container.procurement = Failing()  # type: ignore[assignment]
    before = row_counts(app_container)
    response = client(app_container).post(
        "/signup", data={"x-gcp-marketplace-token": emulator_token(account_id)}
    )
    assert response.status_code == 503
    assert "Sign-up is briefly unavailable" in response.text
    assert row_counts(app_container) == before
