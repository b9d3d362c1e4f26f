"""`doctor`: every check passes on a ready configuration, and each wrong turn fails the check
that names it (with the fix), against the emulator with `--require-auth`, the Pub/Sub emulator
and a real database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as google_exceptions

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME
from marketplace_emulator.identity.models import X509_PATH
from marketplace_emulator.server import RunningEmulator
from marketplace_saas.adapters import pubsub
from marketplace_saas.adapters.credentials import CLOUD_PLATFORM, SERVICECONTROL
from marketplace_saas.adapters.usage_catalog import SANDBOX_CATALOG
from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.golive import Check, Doctor
from tests.support.auth import key_file, secured_emulator

pytestmark = pytest.mark.integration

PROVIDER = "DEMO-doctor"
OTHER = "DEMO-another-provider"
PUSHER = "push@provider-project.iam.gserviceaccount.com"
SQLITE_ONLY = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def secured() -> Iterator[RunningEmulator]:
    with secured_emulator(PROVIDER) as running:
        yield running


class World:
    """A ready configuration; `settings(**changes)` is it with one wrong turn."""

    def __init__(self, running: RunningEmulator, folder: Path, values: dict[str, Any]) -> None:
        self.running = running
        self.folder = folder
        self.values = values

    def settings(self, **changes: Any) -> Settings:
        return Settings(_env_file=None, **{**self.values, **changes})

    def doctor(self, pushed: bool = True, **changes: Any) -> list[Check]:
        return Doctor(load=lambda: self.settings(**changes), pushed=pushed).run()

    def subscribe(self, name: str, topic: str, **options: Any) -> str:
        client = pubsub.subscriber_client(self.settings())
        path = f"projects/provider-project/subscriptions/{name}"
        try:
            client.create_subscription(request={"name": path, "topic": topic, **options})
        finally:
            client.close()
        return name


def failed(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks if not check.ok}


@pytest.fixture
def world(
    secured: RunningEmulator, pubsub_env: str, migrated_database_url: str, tmp_path: Path
) -> World:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(SANDBOX_CATALOG), encoding="utf-8")
    values: dict[str, Any] = {
        "marketplace_sandbox": False,
        "google_cloud_project": "provider-project",
        "marketplace_provider_id": PROVIDER,
        "session_secret": "s" * 40,
        "procurement_api_endpoint": secured.url,
        "service_control_api_endpoint": secured.url,
        "google_application_credentials": key_file(secured, tmp_path, providers=[PROVIDER]),
        "database_url": migrated_database_url,
        "pubsub_emulator_host": pubsub_env,
        "marketplace_service_name": DEFAULT_SERVICE_NAME,
        "usage_catalog": catalog,
        "signup_audience": "saas.example.test",
        "signup_certs_url": f"{secured.url}{X509_PATH}",
        "push_audience": "https://saas.example.test/pubsub/push",
        "push_service_account": PUSHER,
    }
    made = World(secured, tmp_path, values)
    for provider in (PROVIDER, OTHER):
        pubsub.ensure_topic(made.settings(), f"projects/cloudcommerceproc-prod/topics/{provider}")
    name = f"doctor-{uuid.uuid4().hex[:8]}"
    made.values["marketplace_subscription"] = made.subscribe(
        name, f"projects/cloudcommerceproc-prod/topics/{PROVIDER}"
    )
    return made


def test_a_ready_configuration_passes_every_check(world: World) -> None:
    checks = world.doctor()
    assert [c.name for c in checks] == [
        "settings",
        "credentials",
        "provider",
        "subscription",
        "service control",
        "database",
        "sign-up",
        "push",
    ]
    assert failed(checks) == {}
    assert "4 catalog metrics" in checks[4].detail


Change = Callable[[World], dict[str, Any]]


def _key(world: World, **options: Any) -> dict[str, Any]:
    folder = world.folder / uuid.uuid4().hex
    folder.mkdir()
    return {"google_application_credentials": key_file(world.running, folder, **options)}


def _catalog_with_unknown_metric(world: World) -> dict[str, Any]:
    catalog = json.loads(json.dumps(SANDBOX_CATALOG))
    product = catalog["products"]["example-product"]
    product["metrics"]["gpu_hours"] = "int64"
    path = world.folder / "unknown-metric.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return {"usage_catalog": path}


def _push_subscription_for_someone_else(world: World) -> dict[str, Any]:
    name = world.subscribe(
        f"push-{uuid.uuid4().hex[:8]}",
        f"projects/cloudcommerceproc-prod/topics/{PROVIDER}",
        push_config={
            "push_endpoint": "http://127.0.0.1:9/pubsub/push",
            "oidc_token": {"service_account_email": "stranger@x.iam.gserviceaccount.com"},
        },
    )
    return {"marketplace_subscription": name}


WRONG_TURNS: dict[str, tuple[Change, set[str], str]] = {
    "sandbox": (lambda w: {"marketplace_sandbox": True}, {"settings"}, "sandbox is on"),
    "missing key file": (
        lambda w: {"google_application_credentials": w.folder / "nowhere.json"},
        {"credentials"},
        "nowhere.json",
    ),
    "key without the Procurement scope": (
        lambda w: _key(w, name="metering-only", scopes=[SERVICECONTROL], providers=[PROVIDER]),
        {"credentials"},
        CLOUD_PLATFORM,
    ),
    "wrong provider id": (
        lambda w: {"marketplace_provider_id": "DEMO-typo"},
        {"provider", "subscription"},
        "commerceprocurement.providerAccounts.list",
    ),
    "no subscription": (
        lambda w: {"marketplace_subscription": "never-created"},
        {"subscription"},
        "pubsub create-subscription",
    ),
    "subscription on another provider's topic": (
        lambda w: {
            "marketplace_subscription": w.subscribe(
                f"other-{uuid.uuid4().hex[:8]}", f"projects/cloudcommerceproc-prod/topics/{OTHER}"
            )
        },
        {"subscription"},
        f"provider {OTHER}",
    ),
    "catalog metric the service does not declare": (
        _catalog_with_unknown_metric,
        {"service control"},
        "gpu_hours",
    ),
    "database not migrated": (
        lambda w: {"database_url": f"sqlite:///{w.folder / 'empty.db'}"},
        {"database"},
        "db upgrade",
    ),
    "database unreachable": (
        lambda w: {"database_url": "postgresql+psycopg://nobody@127.0.0.1:9/none"},
        {"database"},
        "unreachable",
    ),
    "no sign-up audience": (lambda w: {"signup_audience": None}, {"sign-up"}, "SIGNUP_AUDIENCE"),
    "sign-up certificates URL serving nothing": (
        lambda w: {"signup_certs_url": f"{w.running.url}/robot/v1/metadata/x509/nobody"},
        {"sign-up"},
        "serves no certificates",
    ),
    "push without push auth": (
        lambda w: {"push_audience": None},
        {"push"},
        "anyone could post",
    ),
    "push subscription signing for another account": (
        _push_subscription_for_someone_else,
        {"push"},
        "stranger@",
    ),
}


@SQLITE_ONLY
@pytest.mark.parametrize("turn", list(WRONG_TURNS))
def test_each_wrong_turn_fails_the_check_that_names_it(world: World, turn: str) -> None:
    change, names, words = WRONG_TURNS[turn]
    checks = world.doctor(**change(world))
    failures = failed(checks)
    assert set(failures) == names, [c.to_json() for c in checks]
    assert any(words in f.detail or words in f.fix for f in failures.values()), failures
    assert all(f.fix for f in failures.values())


@SQLITE_ONLY
def test_an_unknown_service_name_fails_service_control(world: World) -> None:
    """The catalog's products report to MARKETPLACE_SERVICE_NAME when they name no service."""
    catalog = json.loads(json.dumps(SANDBOX_CATALOG))
    del catalog["products"]["example-product"]["service"]
    path = world.folder / "default-service.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    checks = world.doctor(
        usage_catalog=path, marketplace_service_name="unknown.endpoints.example.cloud.goog"
    )
    failures = failed(checks)
    assert set(failures) == {"service control"}
    assert "unknown.endpoints.example.cloud.goog" in failures["service control"].detail


@SQLITE_ONLY
def test_invalid_settings_fail_alone_and_stop_the_other_checks(world: World) -> None:
    checks = world.doctor(session_secret="short")
    assert [(c.name, c.ok) for c in checks] == [("settings", False)]
    assert "SESSION_SECRET" in checks[0].detail


@SQLITE_ONLY
def test_pulled_notifications_need_no_push_auth(world: World) -> None:
    checks = world.doctor(pushed=False, push_audience=None, push_service_account=None)
    assert failed(checks) == {}


@SQLITE_ONLY
def test_doctor_writes_nothing(world: World) -> None:
    """No database file, subscription or record is created by the check."""
    missing = world.folder / "absent.db"
    world.doctor(database_url=f"sqlite:///{missing}", marketplace_subscription="absent")
    assert not missing.exists()
    client = pubsub.subscriber_client(world.settings())
    try:
        with pytest.raises(google_exceptions.NotFound):
            client.get_subscription(
                request={"subscription": "projects/provider-project/subscriptions/absent"}
            )
    finally:
        client.close()


@SQLITE_ONLY
def test_a_transient_google_answer_is_reported_but_does_not_stop_serve(world: World) -> None:
    """Procurement answering 429 is no verdict on the provider id: `doctor` reports the check as
    failed and transient, `serve`'s preflight lets the start go on (a replica restarting into
    an overloaded API must come up); a real refusal (another provider) still stops it."""
    from marketplace_emulator.faults import FaultSettings, ProcurementFaults
    from marketplace_saas.entrypoints.golive import preflight

    faults = world.running.emulator.faults
    faults.configure(FaultSettings(procurement=ProcurementFaults(error_rate=1.0, statuses=[429])))
    try:
        provider = failed(world.doctor())["provider"]
        assert provider.transient
        assert "could not be answered now" in provider.detail
        assert preflight(world.settings(), pull=False) == []
    finally:
        faults.clear()
    refused = preflight(world.settings(marketplace_provider_id=OTHER), pull=False)
    assert [c.name for c in refused] == ["provider"]
    assert not refused[0].transient
