"""Every `marketplace-saas` command of the lifecycle, run in-process against the emulator."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import AuditLog, InboxMessage
from marketplace_saas.bootstrap import Container
from marketplace_saas.service.procurement.inbox import handle_message
from tests.integration.backend.cli_support import Cli, cli_fixture
from tests.integration.backend.conftest import PROVIDER
from tests.integration.backend.process_support import backend_env, run_cli

pytestmark = pytest.mark.integration
__all__ = ["cli_fixture"]

API_FIELDS = {"name", "account", "provider", "product", "plan", "state", "createTime", "updateTime"}


def buy(emulator: Emulator, plan: str = "basic", account: str | None = None) -> tuple[str, str]:
    acc, ent = emulator.procurement.purchase(PROVIDER, "example-product", plan, account_id=account)
    return acc.id, ent.id


def test_sync_then_entitlements_list_json_shows_every_entitlement(
    emulator: Emulator, cli: Cli
) -> None:
    _, first = buy(emulator)
    _, second = buy(emulator, "pro")
    result = cli("sync", "--json")
    assert result.code == 0, result.err
    listed = cli("entitlements", "list", "--json")
    assert listed.code == 0
    rows = {row["id"]: row for row in listed.json()}
    assert set(rows) == {first, second}
    assert rows[second]["plan"] == "pro"
    assert rows[first]["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert rows[first]["name"] == f"providers/{PROVIDER}/entitlements/{first}"


def test_entitlements_show_json_has_the_apis_field_names_and_ours(
    emulator: Emulator, cli: Cli
) -> None:
    account_id, entitlement_id = buy(emulator)
    assert cli("sync").code == 0
    result = cli("entitlements", "show", entitlement_id, "--json")
    assert result.code == 0, result.err
    shown = result.json()
    assert set(shown) >= API_FIELDS
    assert shown["account"] == f"providers/{PROVIDER}/accounts/{account_id}"
    assert shown["provider"] == PROVIDER
    assert shown["product"] == "example-product"
    assert {"serviceEnabled", "customerId", "servicePlan"} <= set(shown)
    assert shown["serviceEnabled"] is False


def test_tables_for_people_have_headers_and_one_line_per_row(emulator: Emulator, cli: Cli) -> None:
    _, entitlement_id = buy(emulator)
    cli("sync")
    table = cli("entitlements", "list").out.splitlines()
    assert table[0].split()[:2] == ["ENTITLEMENT", "ACCOUNT"]
    assert len(table) == 2
    assert table[1].startswith(entitlement_id)
    accounts = cli("accounts", "list").out.splitlines()
    assert accounts[0].startswith("ACCOUNT")
    assert len(accounts) == 2


@pytest.mark.parametrize(
    "command",
    [
        ["entitlements", "show", "no-such-entitlement"],
        ["accounts", "show", "no-such-account"],
        ["events", "show", "no-such-event"],
        ["events", "replay", "no-such-event"],
        ["entitlements", "approve", "no-such-entitlement"],
        ["accounts", "approve", "no-such-account"],
    ],
)
def test_an_unknown_id_is_exit_1_with_not_found_on_stderr(cli: Cli, command: list[str]) -> None:
    result = cli(*command)
    assert result.code == 1
    assert "not found" in result.err
    assert result.out == ""


def test_operator_approves_account_then_entitlement_through_google(
    emulator: Emulator, cli: Cli, container: Container
) -> None:
    account_id, entitlement_id = buy(emulator)
    approved = cli("accounts", "approve", account_id, "--json")
    assert approved.code == 0, approved.err
    assert approved.json()["signupApproval"] == "APPROVED"
    assert emulator.procurement.get_account(PROVIDER, account_id).signup_state == "APPROVED"
    result = cli("entitlements", "approve", entitlement_id)
    assert result.code == 0, result.err
    assert result.out.startswith(f"approved: entitlement {entitlement_id} is ENTITLEMENT_")
    assert (
        emulator.procurement.get_entitlement(PROVIDER, entitlement_id).state == "ENTITLEMENT_ACTIVE"
    )
    with container.sessions() as session:
        actors = set(session.scalars(sa.select(AuditLog.actor).where(AuditLog.kind == "change")))
    assert actors == {"operator:cli"}


def test_google_refusing_an_action_is_exit_1_with_its_reason(emulator: Emulator, cli: Cli) -> None:
    """Approving before the account's sign-up is approved: the emulator refuses, as partners say."""
    _, entitlement_id = buy(emulator)
    result = cli("entitlements", "approve", entitlement_id)
    assert result.code == 1
    assert "Approve the account first" in result.err


def test_reject_entitlement_and_account_with_a_reason(emulator: Emulator, cli: Cli) -> None:
    account_id, entitlement_id = buy(emulator)
    result = cli("entitlements", "reject", entitlement_id, "--reason", "not in our region")
    assert result.code == 0, result.err
    entitlement = emulator.procurement.get_entitlement(PROVIDER, entitlement_id)
    assert entitlement.state == "ENTITLEMENT_CANCELLED"
    assert entitlement.cancellation_reason == "not in our region"
    rejected = cli("accounts", "reject", account_id, "--reason", "fraud check")
    assert rejected.code == 0, rejected.err
    assert emulator.procurement.get_account(PROVIDER, account_id).signup_state == "REJECTED"
    assert cli("accounts", "reject", account_id).code == 2  # --reason is required: usage error


def test_plan_change_approve_and_reject(emulator: Emulator, cli: Cli) -> None:
    account_id, first = buy(emulator)
    _, second = buy(emulator, account=account_id)
    emulator.procurement.approve_account(PROVIDER, account_id, "signup")
    for entitlement_id in (first, second):
        emulator.procurement.approve_entitlement(PROVIDER, entitlement_id)
        emulator.procurement.change_plan(PROVIDER, entitlement_id, "pro")
    approved = cli("entitlements", "approve-plan-change", first, "--json")
    assert approved.code == 0, approved.err
    assert approved.json()["outcome"] == "approved"
    assert not emulator.procurement.get_entitlement(PROVIDER, first).new_pending_plan
    result = cli("entitlements", "reject-plan-change", second, "--reason", "not yet")
    assert result.code == 0, result.err
    assert result.out.startswith(f"rejected: entitlement {second} is ENTITLEMENT_ACTIVE")
    after = emulator.procurement.get_entitlement(PROVIDER, second)
    assert (after.plan, after.state) == ("basic", "ENTITLEMENT_ACTIVE")


def test_a_decision_that_is_not_pending_is_exit_1_with_the_state(
    emulator: Emulator, cli: Cli
) -> None:
    _, entitlement_id = buy(emulator)
    assert cli("entitlements", "reject", entitlement_id, "--reason", "no").code == 0
    again = cli("entitlements", "approve", entitlement_id)
    assert again.code == 1
    assert "ENTITLEMENT_CANCELLED" in again.err


def test_message_to_user_is_set_on_a_pending_entitlement(emulator: Emulator, cli: Cli) -> None:
    _, entitlement_id = buy(emulator)
    result = cli("entitlements", "message", entitlement_id, "Provisioning, about 5 minutes")
    assert result.code == 0, result.err
    entitlement = emulator.procurement.get_entitlement(PROVIDER, entitlement_id)
    assert entitlement.message_to_user == "Provisioning, about 5 minutes"


def test_suspend_states_googles_answer(emulator: Emulator, cli: Cli) -> None:
    """Google documents suspension as not yet supported; the command says what Google said."""
    account_id, entitlement_id = buy(emulator)
    emulator.procurement.approve_account(PROVIDER, account_id, "signup")
    emulator.procurement.approve_entitlement(PROVIDER, entitlement_id)
    result = cli("entitlements", "suspend", entitlement_id, "--reason", "abuse")
    state = emulator.procurement.get_entitlement(PROVIDER, entitlement_id).state
    if result.code == 0:
        assert state == "ENTITLEMENT_SUSPENDED"
    else:
        assert result.code == 1
        assert result.err.startswith("error: ")
        assert state == "ENTITLEMENT_ACTIVE"


def test_accounts_reset_puts_signup_back_to_pending(emulator: Emulator, cli: Cli) -> None:
    account_id, _ = buy(emulator)
    emulator.procurement.approve_account(PROVIDER, account_id, "signup")
    result = cli("accounts", "reset", account_id)
    assert result.code == 0, result.err
    assert emulator.procurement.get_account(PROVIDER, account_id).signup_state == "PENDING"


def test_accounts_show_lists_the_accounts_entitlements(emulator: Emulator, cli: Cli) -> None:
    account_id, first = buy(emulator)
    _, second = buy(emulator, account=account_id)
    cli("sync")
    shown = cli("accounts", "show", account_id, "--json").json()
    assert shown["name"] == f"providers/{PROVIDER}/accounts/{account_id}"
    assert sorted(shown["entitlements"]) == sorted([first, second])
    assert shown["approvals"][0]["name"] == "signup"


def test_events_list_show_and_replay_a_parked_event(
    emulator: Emulator, cli: Cli, container: Container
) -> None:
    _, entitlement_id = buy(emulator)
    payload = next(
        p for p in emulator.notifications(PROVIDER) if p.get("entitlement", {}).get("id")
    )
    handle_message(container, b"garbage", message_id="m-0", source="pull")
    with container.sessions.begin() as session:
        session.add(
            InboxMessage(
                event_id=payload["eventId"],
                event_type=payload["eventType"],
                provider_id=PROVIDER,
                subject_kind="entitlement",
                subject_id=entitlement_id,
                payload=json.dumps(payload),
                status="parked",
                attempts=5,
                last_error="503 UNAVAILABLE",
            )
        )
    listed = cli("events", "list", "--json").json()
    assert [row["status"] for row in listed] == ["parked", "invalid"]
    parked = cli("events", "list", "--status", "parked").out
    assert payload["eventId"] in parked
    assert "garbage" not in parked
    shown = cli("events", "show", payload["eventId"], "--json").json()
    assert shown["error"] == "503 UNAVAILABLE"
    replayed = cli("events", "replay", payload["eventId"])
    assert replayed.code == 0, replayed.err
    assert "processed" in replayed.out


def test_db_upgrade_migrates_an_empty_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    result = cli("db", "upgrade", "--json")
    assert result.code == 0, result.err
    assert result.json()["revision"]
    engine = sa.create_engine(url)
    try:
        assert "entitlements" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_pubsub_create_subscription_creates_once_and_explains_a_missing_topic(
    cli: Cli, pubsub_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import pubsub_v1  # type: ignore[import-untyped]

    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("MARKETPLACE_PROVIDER_ID", f"DEMO-sub-{suffix}")
    monkeypatch.setenv("MARKETPLACE_SUBSCRIPTION", f"codelab-{suffix}")
    missing = cli("pubsub", "create-subscription")
    assert missing.code == 1
    assert (
        f"topic projects/cloudcommerceproc-prod/topics/DEMO-sub-{suffix} not found" in missing.err
    )
    publisher = pubsub_v1.PublisherClient()
    topic = f"projects/cloudcommerceproc-prod/topics/DEMO-sub-{suffix}"
    publisher.create_topic(request={"name": topic})
    created = cli("pubsub", "create-subscription", "--json")
    assert created.code == 0, created.err
    assert created.json() == {
        "subscription": f"projects/sandbox/subscriptions/codelab-{suffix}",
        "topic": topic,
        "created": True,
    }
    again = cli("pubsub", "create-subscription")
    assert again.code == 0
    assert "already exists" in again.out
    publisher.transport.close()


def test_the_installed_command_runs_as_a_real_process(
    emulator: Emulator, container: Container
) -> None:
    _, entitlement_id = buy(emulator)
    env = backend_env(container.settings)
    synced = run_cli(["sync"], env)
    assert synced.returncode == 0, synced.stderr
    listed = run_cli(["entitlements", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert entitlement_id in listed.stdout
    unknown = run_cli(["entitlements", "show", "nope"], env)
    assert unknown.returncode == 1
    assert "not found" in unknown.stderr
