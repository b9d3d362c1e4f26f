"""Real credentials against the emulator's `--require-auth`: the key file named by
GOOGLE_APPLICATION_CREDENTIALS signs every call outside the sandbox (emulator endpoints
included), each API with its own scope; anonymous only in the sandbox; refusals say what is
missing; tokens are refreshed before they expire and never logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME
from marketplace_emulator.server import RunningEmulator
from marketplace_saas.adapters.credentials import (
    CLOUD_PLATFORM,
    SERVICECONTROL,
    CredentialsError,
    GoogleCredentials,
)
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.adapters.procurement_errors import ProcurementError
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.config import Settings
from tests.support.auth import key_file, secured_emulator

PROVIDER = "DEMO-credentials"


@pytest.fixture(scope="module")
def secured() -> Iterator[RunningEmulator]:
    with secured_emulator(PROVIDER) as running:
        yield running


def production_settings(running: RunningEmulator, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "marketplace_sandbox": False,
        "google_cloud_project": "provider-project",
        "marketplace_provider_id": PROVIDER,
        "session_secret": "s" * 40,
        "procurement_api_endpoint": running.url,
        "service_control_api_endpoint": running.url,
        "database_url": f"sqlite:///{tmp_path / 'db.sqlite'}",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def container(secured: RunningEmulator, tmp_path: Path) -> Iterator[Container]:
    path = key_file(secured, tmp_path)
    made = bootstrap(production_settings(secured, tmp_path, google_application_credentials=path))
    yield made
    made.close()


def _check(container: Container) -> dict[str, Any]:
    operation = {
        "operationId": "check-1",
        "operationName": "check",
        "consumerId": "project_number:1",
        "startTime": "2026-01-01T00:00:00Z",
    }
    answer: dict[str, Any] = container.servicecontrol.check(DEFAULT_SERVICE_NAME, operation)
    return answer


def test_outside_the_sandbox_each_api_is_called_with_a_token_for_its_own_scope(
    secured: RunningEmulator, container: Container
) -> None:
    before = secured.emulator.oauth.exchanges
    assert list(container.procurement.list_accounts()) == []
    assert list(container.procurement.list_entitlements()) == []
    assert _check(container)["checkErrors"][0]["code"] == "SERVICE_NOT_ACTIVATED"
    procurement_token = container.credentials.scoped((CLOUD_PLATFORM,)).token
    metering_token = container.credentials.scoped((SERVICECONTROL,)).token
    oauth = secured.emulator.oauth
    assert oauth.lookup(procurement_token).scopes == {CLOUD_PLATFORM}  # type: ignore[union-attr]
    assert oauth.lookup(metering_token).scopes == {SERVICECONTROL}  # type: ignore[union-attr]
    assert oauth.exchanges - before == 2, "one token per API, reused across calls"


def test_a_token_about_to_expire_is_refreshed_before_the_call(
    secured: RunningEmulator, container: Container
) -> None:
    list(container.procurement.list_accounts())
    credentials = container.credentials.scoped((CLOUD_PLATFORM,))
    old = credentials.token
    before = secured.emulator.oauth.exchanges
    credentials.expiry = (datetime.now(UTC) + timedelta(seconds=60)).replace(tzinfo=None)
    assert list(container.procurement.list_accounts()) == []
    assert secured.emulator.oauth.exchanges == before + 1
    assert credentials.token != old


def test_the_sandbox_without_a_key_calls_anonymously(
    secured: RunningEmulator, tmp_path: Path
) -> None:
    """Anonymous calls happen only in the sandbox; `--require-auth` refuses them with a hint."""
    settings = production_settings(secured, tmp_path, marketplace_sandbox=True)
    made = bootstrap(settings)
    try:
        assert made.credentials.anonymous
        with pytest.raises(ProcurementError) as refused:
            list(made.procurement.list_accounts())
    finally:
        made.close()
    assert refused.value.status_code == 401
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(refused.value)


def test_outside_the_sandbox_a_missing_key_file_is_a_clear_error(
    secured: RunningEmulator, tmp_path: Path
) -> None:
    settings = production_settings(
        secured, tmp_path, google_application_credentials=tmp_path / "missing.json"
    )
    with pytest.raises(CredentialsError, match=r"GOOGLE_APPLICATION_CREDENTIALS=.*missing\.json"):
        GoogleCredentials(settings).scoped((CLOUD_PLATFORM,))


def test_a_key_not_allowed_the_apis_scope_is_refused_naming_the_scope(
    secured: RunningEmulator, tmp_path: Path
) -> None:
    path = key_file(secured, tmp_path, name="metering-only", scopes=[SERVICECONTROL])
    made = bootstrap(production_settings(secured, tmp_path, google_application_credentials=path))
    try:
        with pytest.raises(CredentialsError, match=f"refused an access token for {CLOUD_PLATFORM}"):
            list(made.procurement.list_accounts())
        assert _check(made)["operationId"] == "check-1"  # Service Control still works
    finally:
        made.close()


def test_a_call_refused_for_its_scope_names_the_scope_and_the_permission(
    secured: RunningEmulator, tmp_path: Path
) -> None:
    path = key_file(secured, tmp_path)
    settings = production_settings(secured, tmp_path, google_application_credentials=path)
    wrong = GoogleCredentials(settings).scoped((SERVICECONTROL,))
    gateway = ProcurementGateway(settings, credentials=wrong, max_attempts=1)
    try:
        with pytest.raises(ProcurementError) as refused:
            gateway.get_entitlement("e-1")
    finally:
        gateway.close()
    assert refused.value.status_code == 403
    assert refused.value.status == "PERMISSION_DENIED"
    message = str(refused.value)
    assert CLOUD_PLATFORM in message
    assert "commerceprocurement.providerEntitlements.get" in message


def test_no_access_token_is_logged(
    container: Container, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    list(container.procurement.list_accounts())
    _check(container)
    tokens = [container.credentials.scoped(s).token for s in ((CLOUD_PLATFORM,), (SERVICECONTROL,))]
    captured = capfd.readouterr()
    for token in tokens:
        assert token
        assert token not in caplog.text
        assert token not in captured.out + captured.err
