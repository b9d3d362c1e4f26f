"""The emulator's token endpoint and `--require-auth`, through google-auth's service-account
credentials and Google's discovery clients, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import google_auth_httplib2
import httplib2
import httpx
import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from marketplace_emulator.events import RecordingSink
from marketplace_emulator.server import Emulator, RunningEmulator
from tests.support.auth import secured_emulator

PROVIDER = "DEMO-auth"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SERVICECONTROL = "https://www.googleapis.com/auth/servicecontrol"


@pytest.fixture(scope="module")
def secured() -> Iterator[RunningEmulator]:
    with secured_emulator(PROVIDER) as running:
        yield running


def _key(running: RunningEmulator, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{running.url}/emulator/v1/serviceAccountKeys", json=body)
    response.raise_for_status()
    key: dict[str, Any] = response.json()
    return key


@pytest.fixture
def opened() -> Iterator[list[httplib2.Http]]:
    """Connections a test opens, closed after it."""
    https: list[httplib2.Http] = []
    yield https
    for http in https:
        http.close()


def _refresh(credentials: Any, opened: list[httplib2.Http]) -> None:
    opened.append(httplib2.Http(timeout=10))
    credentials.refresh(google_auth_httplib2.Request(opened[-1]))


def _procurement(running: RunningEmulator, credentials: Any, opened: list[httplib2.Http]) -> Any:
    opened.append(httplib2.Http(timeout=10))
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=opened[-1])
    return build(
        "cloudcommerceprocurement",
        "v1",
        static_discovery=True,
        http=http,
        client_options={"api_endpoint": running.url + "/"},
    )


def _error(exc: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(exc.value.content)["error"]
    return error


def test_a_service_account_key_from_the_emulator_gets_a_token_and_calls_the_api(
    secured: RunningEmulator, opened: list[httplib2.Http]
) -> None:
    """google-auth exchanges the key's JWT at its `token_uri`; the token carries the scope."""
    key = _key(secured)
    assert key["token_uri"] == f"{secured.url}/token"
    credentials = service_account.Credentials.from_service_account_info(
        key, scopes=[CLOUD_PLATFORM]
    )
    api = _procurement(secured, credentials, opened)
    answer = api.providers().accounts().list(parent=f"providers/{PROVIDER}").execute()
    assert answer == {}
    assert credentials.token.startswith("ya29.")
    granted = secured.emulator.oauth.lookup(credentials.token)
    assert granted is not None
    assert granted.scopes == {CLOUD_PLATFORM}
    assert granted.email == key["client_email"]


def test_a_call_without_a_token_is_401_unauthenticated_in_googles_envelope(
    secured: RunningEmulator,
) -> None:
    for headers in ({}, {"Authorization": "Bearer ya29.not-issued-here"}):
        response = httpx.get(
            f"{secured.url}/v1/providers/{PROVIDER}/entitlements/e-1", headers=headers
        )
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["status"] == "UNAUTHENTICATED"
        assert error["code"] == 401
        assert "authentication credential" in error["message"]
    report = httpx.post(f"{secured.url}/v1/services/example.test:report", json={})
    assert report.status_code == 401


def test_a_token_without_the_methods_scope_is_403_permission_denied_naming_the_scopes(
    secured: RunningEmulator, opened: list[httplib2.Http]
) -> None:
    """Procurement names only cloud-platform; a servicecontrol-scoped token is refused there
    but accepted by Service Control, whose methods name both scopes."""
    credentials = service_account.Credentials.from_service_account_info(
        _key(secured), scopes=[SERVICECONTROL]
    )
    api = _procurement(secured, credentials, opened)
    with pytest.raises(HttpError) as refused:
        api.providers().entitlements().get(name=f"providers/{PROVIDER}/entitlements/x").execute()
    error = _error(refused)
    assert refused.value.resp.status == 403
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == "Request had insufficient authentication scopes."
    info = error["details"][0]
    assert info["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert info["metadata"]["method"] == "cloudcommerceprocurement.providers.entitlements.get"
    assert info["metadata"]["acceptedScopes"] == CLOUD_PLATFORM
    check = httpx.post(
        f"{secured.url}/v1/services/unknown.example:check",
        json={"operation": {}},
        headers={"Authorization": f"Bearer {credentials.token}"},
    )
    assert check.status_code != 401
    assert "insufficient authentication scopes" not in check.text


def test_a_key_limited_to_other_scopes_is_refused_at_the_token_endpoint(
    secured: RunningEmulator, opened: list[httplib2.Http]
) -> None:
    from google.auth.exceptions import RefreshError

    key = _key(secured, name="metering-only", scopes=[SERVICECONTROL])
    credentials = service_account.Credentials.from_service_account_info(
        key, scopes=[CLOUD_PLATFORM]
    )
    with pytest.raises(RefreshError, match="invalid_scope"):
        _refresh(credentials, opened)


def test_a_forged_or_expired_assertion_is_invalid_grant(secured: RunningEmulator) -> None:
    """Signed by another key, or out of date: 400 invalid_grant, no token."""
    import time

    from google.auth import crypt, jwt

    key = _key(secured)
    other = _key(secured, name="someone-else")
    forged_signer = crypt.RSASigner.from_string(other["private_key"], key["private_key_id"])
    now = int(time.time())
    claims = {
        "iss": key["client_email"],
        "aud": key["token_uri"],
        "scope": CLOUD_PLATFORM,
        "iat": now,
        "exp": now + 600,
    }
    good_signer = crypt.RSASigner.from_string(key["private_key"], key["private_key_id"])
    for signer, extra in [
        (forged_signer, {}),
        (good_signer, {"iat": now - 7200, "exp": now - 3600}),
    ]:
        assertion = jwt.encode(signer, {**claims, **extra}).decode()
        answer = httpx.post(
            key["token_uri"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
    granted = httpx.post(
        key["token_uri"],
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt.encode(good_signer, claims).decode(),
        },
    )
    assert granted.status_code == 200
    assert granted.json()["token_type"] == "Bearer"


def test_an_expired_access_token_is_401(
    secured: RunningEmulator, opened: list[httplib2.Http]
) -> None:
    oauth = secured.emulator.oauth
    credentials = service_account.Credentials.from_service_account_info(
        _key(secured), scopes=[CLOUD_PLATFORM]
    )
    _refresh(credentials, opened)
    headers = {"Authorization": f"Bearer {credentials.token}"}
    url = f"{secured.url}/v1/providers/{PROVIDER}/accounts"
    assert httpx.get(url, headers=headers).status_code == 200
    granted = oauth.lookup(credentials.token)
    assert granted is not None
    oauth._tokens[credentials.token] = granted.__class__(granted.email, granted.scopes, 0.0)
    assert httpx.get(url, headers=headers).status_code == 401


def test_without_require_auth_any_token_or_none_is_accepted() -> None:
    """The default emulator stays anonymous: the middleware is not even installed."""
    from marketplace_emulator.identity.require_auth import RequireAuthMiddleware
    from marketplace_emulator.server import create_app

    app = create_app(Emulator(sink=RecordingSink()))
    assert all(m.cls is not RequireAuthMiddleware for m in app.user_middleware)
    secured_app = create_app(Emulator(sink=RecordingSink(), require_auth=True))
    assert any(m.cls is RequireAuthMiddleware for m in secured_app.user_middleware)


def test_a_key_linked_to_one_provider_is_denied_another_providers_resources(
    secured: RunningEmulator, opened: list[httplib2.Http]
) -> None:
    """As Google answers a service account not linked to the provider: 403 naming the
    permission and the resource."""
    key = _key(secured, name="linked-account", providers=[PROVIDER])
    credentials = service_account.Credentials.from_service_account_info(
        key, scopes=[CLOUD_PLATFORM]
    )
    api = _procurement(secured, credentials, opened)
    assert api.providers().accounts().list(parent=f"providers/{PROVIDER}").execute() == {}
    with pytest.raises(HttpError) as refused:
        api.providers().accounts().list(parent="providers/DEMO-someone-else").execute()
    error = _error(refused)
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == (
        "Permission 'commerceprocurement.providerAccounts.list' denied on resource "
        "'providers/DEMO-someone-else' (or it may not exist)."
    )


def test_the_cli_prints_a_key_file_linked_to_its_provider(
    secured: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from marketplace_emulator import cli

    code = cli.main(
        ["--url", secured.url, "--provider", PROVIDER, "service-account-key", "--name", "cli-key"]
    )
    assert code == 0
    key = json.loads(capsys.readouterr().out)
    assert key["type"] == "service_account"
    assert key["token_uri"] == f"{secured.url}/token"
    assert key["client_email"] == "cli-key@emulator-project.iam.gserviceaccount.com"
    account = secured.emulator.oauth._keys[key["private_key_id"]]
    assert account.providers == {PROVIDER}
