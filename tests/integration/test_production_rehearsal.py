"""The production rehearsal: the whole stack as a provider runs it on go-live day, with nothing
of the sandbox. `MARKETPLACE_SANDBOX=0`; a service-account key from the emulator; the emulator
with `--require-auth` (every call needs a token with the method's scope, and the key is linked to
the provider); PostgreSQL; the real Pub/Sub emulator holding the topic and subscription; the
notifications pushed with an OIDC token the backend verifies. `marketplace-saas serve` runs as a
real process; the other commands run through the CLI's `main`.

Then the wrong turns: a key without the needed scope, a wrong provider id, a subscription on
another provider's topic. `doctor` names each, `serve` refuses to start, nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME
from marketplace_emulator.identity.models import X509_PATH
from marketplace_emulator.identity.oauth import OIDC_X509_PATH
from marketplace_emulator.server import RunningEmulator, free_port
from marketplace_saas.adapters import pubsub
from marketplace_saas.adapters.credentials import SERVICECONTROL
from marketplace_saas.adapters.usage_catalog import SANDBOX_CATALOG
from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.cli import main
from tests.integration.backend.process_support import Process
from tests.support import infra
from tests.support.auth import key_file, secured_emulator

pytestmark = pytest.mark.integration

PROVIDER = "DEMO-rehearsal"
OTHER = "DEMO-someone-else"
PUSHER = "marketplace-push@provider-project.iam.gserviceaccount.com"
AUDIENCE = "saas.example.test"
USAGE_TOKEN = "rehearsal-usage-token-0123456789"


def production_env(
    emulator: RunningEmulator, key: Path, database_url: str, folder: Path, push_url: str
) -> dict[str, str]:
    catalog = folder / "usage-catalog.json"
    catalog.write_text(json.dumps(SANDBOX_CATALOG), encoding="utf-8")
    return {
        "MARKETPLACE_SANDBOX": "0",
        "GOOGLE_CLOUD_PROJECT": "provider-project",
        "MARKETPLACE_PROVIDER_ID": PROVIDER,
        "MARKETPLACE_SUBSCRIPTION": "marketplace",
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "PROCUREMENT_API_ENDPOINT": emulator.url,
        "SERVICE_CONTROL_API_ENDPOINT": emulator.url,
        "DATABASE_URL": database_url,
        "SESSION_SECRET": "rehearsal-session-secret-0123456789abcdef",
        "SIGNUP_AUDIENCE": AUDIENCE,
        "SIGNUP_CERTS_URL": f"{emulator.url}{X509_PATH}",
        "PUSH_AUDIENCE": push_url,
        "PUSH_SERVICE_ACCOUNT": PUSHER,
        "PUSH_CERTS_URL": f"{emulator.url}{OIDC_X509_PATH}",
        "MARKETPLACE_SERVICE_NAME": DEFAULT_SERVICE_NAME,
        "USAGE_CATALOG": str(catalog),
        "USAGE_API_TOKENS": USAGE_TOKEN,
        "APPROVAL_POLICY": "signup",
        "PLAN_CHANGE_POLICY": "auto",
    }


@contextmanager
def environment(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> Iterator[None]:
    with monkeypatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def entitlement(database_url: str, entitlement_id: str) -> dict[str, Any] | None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT state, plan FROM entitlements WHERE id = :id"),
                {"id": entitlement_id},
            ).first()
    finally:
        engine.dispose()
    return dict(row._mapping) if row is not None else None


def control(emulator: RunningEmulator, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{emulator.url}/emulator/v1/{path}", json=body, timeout=10)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def sign_up(base: str, emulator: RunningEmulator, account_id: str) -> None:
    """As the customer's browser does; the session cookie is Secure, so it is sent by hand."""
    token = control(emulator, "signupTokens", {"account": account_id, "audience": AUDIENCE})
    with httpx.Client(base_url=base, timeout=20, follow_redirects=False) as browser:
        form = browser.post("/signup", data={"x-gcp-marketplace-token": token["token"]})
        assert form.status_code == 200, form.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        cookie = form.headers["set-cookie"].split(";", 1)[0]
        done = browser.post(
            "/signup/complete",
            data={
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "company": "Analytical Engines",
                "csrf_token": csrf.group(1),
            },
            headers={"cookie": cookie},
        )
        assert done.status_code == 303, done.text


def test_production_rehearsal_purchase_to_cancellation(
    pubsub_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    push_url = f"{base}/pubsub/push"
    with (
        secured_emulator(PROVIDER, push_endpoint=push_url, push_auth=(PUSHER, push_url)) as emu,
        infra.postgres_database() as database_url,
    ):
        key = key_file(emu, tmp_path, providers=[PROVIDER])
        env = production_env(emu, key, database_url, tmp_path, push_url)
        with environment(monkeypatch, env):
            assert run(["db", "upgrade"], capsys)[0] == 0
            assert run(["pubsub", "create-subscription"], capsys)[0] == 0
            code, out, _ = run(["doctor", "--push", "--json"], capsys)
            assert code == 0, out
            assert json.loads(out)["ok"] is True
            serve = ["serve", "--no-listener", "--port", str(port)]
            with Process(serve, {**os.environ, **env}, tmp_path, "serve") as server:
                wait_for(lambda: "Stop with Ctrl-C" in server.stdout, "serve", timeout=60)
                bought = control(
                    emu,
                    f"providers/{PROVIDER}/purchases",
                    {"product": "example-product", "plan": "basic", "usageReportingId": "p:1"},
                )
                account_id = bought["account"]["name"].rsplit("/", 1)[1]
                entitlement_id = bought["entitlement"]["name"].rsplit("/", 1)[1]
                wait_for(lambda: entitlement(database_url, entitlement_id), "the purchase")
                sign_up(base, emu, account_id)
                wait_for(
                    lambda: (
                        (entitlement(database_url, entitlement_id) or {}).get("state")
                        == "ENTITLEMENT_ACTIVE"
                    ),
                    "approval after sign-up",
                )
                control(
                    emu,
                    f"providers/{PROVIDER}/entitlements/{entitlement_id}:changePlan",
                    {"plan": "pro"},
                )
                wait_for(
                    lambda: (entitlement(database_url, entitlement_id) or {}).get("plan") == "pro",
                    "the plan change",
                )
                usage = httpx.post(
                    f"{base}/v1/usage",
                    json={
                        "records": [
                            {
                                "id": "u-1",
                                "entitlement": entitlement_id,
                                "metric": "requests",
                                "value": 42,
                                "time": datetime.now(UTC).isoformat(),
                            }
                        ]
                    },
                    headers={"Authorization": f"Bearer {USAGE_TOKEN}"},
                )
                assert usage.status_code == 200, usage.text
                control(
                    emu,
                    f"providers/{PROVIDER}/entitlements/{entitlement_id}:cancel",
                    {"atTermEnd": False},
                )
                wait_for(
                    lambda: (
                        (entitlement(database_url, entitlement_id) or {}).get("state")
                        == "ENTITLEMENT_CANCELLED"
                    ),
                    "the cancellation",
                )
            later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            code, out, err = run(
                ["report-usage", "--once", "--allow-future", "--now", later], capsys
            )
            assert code == 0, out + err
    reported = [
        value["int64Value"]
        for op in emu.emulator.servicecontrol.accepted_reports(DEFAULT_SERVICE_NAME)
        for metric in op.to_json()["metricValueSets"]
        if metric["metricName"].endswith("/pro_requests")
        for value in metric["metricValues"]
    ]
    assert "42" in reported
    oauth = emu.emulator.oauth
    assert oauth.exchanges >= 2, "the backend called with tokens it got from the key"


def tables(database_url: str) -> list[str]:
    engine = sa.create_engine(database_url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_wrong_turns_are_named_by_doctor_and_refused_by_serve_writing_nothing(
    pubsub_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    push_url = "https://saas.example.test/pubsub/push"
    with secured_emulator(PROVIDER) as emu, infra.postgres_database() as database_url:
        good_key = key_file(emu, tmp_path, name="linked-account", providers=[PROVIDER])
        env = production_env(emu, good_key, database_url, tmp_path, push_url)
        settings = Settings(_env_file=None, pubsub_emulator_host=pubsub_env)
        for provider in (PROVIDER, OTHER):
            pubsub.ensure_topic(settings, f"projects/cloudcommerceproc-prod/topics/{provider}")
        scopeless = key_file(
            emu, tmp_path, name="metering-only", scopes=[SERVICECONTROL], providers=[PROVIDER]
        )
        turns = {
            "credentials": {"GOOGLE_APPLICATION_CREDENTIALS": str(scopeless)},
            "provider": {"MARKETPLACE_PROVIDER_ID": "DEMO-typo"},
            "subscription": {"MARKETPLACE_SUBSCRIPTION": "on-another-topic"},
        }
        with environment(monkeypatch, {**env, **turns["subscription"]}):
            assert run(["pubsub", "create-subscription"], capsys)[0] == 0  # on our topic
        other = pubsub.subscriber_client(settings)
        try:
            other.delete_subscription(
                request={"subscription": "projects/provider-project/subscriptions/on-another-topic"}
            )
            other.create_subscription(
                request={
                    "name": "projects/provider-project/subscriptions/on-another-topic",
                    "topic": f"projects/cloudcommerceproc-prod/topics/{OTHER}",
                }
            )
        finally:
            other.close()
        for check, change in turns.items():
            with environment(monkeypatch, {**env, **change}):
                code, out, _ = run(["doctor", "--json"], capsys)
                assert code == 1, out
                failing = {c["name"]: c for c in json.loads(out)["checks"] if not c["ok"]}
                assert check in failing, (check, failing)
                assert failing[check]["fix"]
                code, _, err = run(["serve", "--port", str(free_port())], capsys)
                assert code == 2, err
                assert f"not starting: {check}:" in err
            assert tables(database_url) == [], f"{check}: serve wrote to the database"
