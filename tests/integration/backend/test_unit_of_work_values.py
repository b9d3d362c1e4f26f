"""The listener's repositories write and read the same values on SQLite and PostgreSQL (where they
run through psycopg directly, `adapters/db/pg_direct.py`): times in UTC whatever zone they were
given in, JSON as given, SQLAlchemy's defaults for the columns left out, and SQLAlchemy's own
exceptions for a refused value or a duplicate key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.adapters.db.engine import create_engine, session_factory
from marketplace_saas.adapters.db.errors import IntegrityError
from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Customer,
    Entitlement,
    HookOutbox,
    InboxMessage,
    PlanHistory,
)
from marketplace_saas.adapters.db.unit_of_work import transaction

PARIS = timezone(timedelta(hours=1))
WHEN = datetime(2026, 3, 1, 13, 30, 15, 123456, tzinfo=PARIS)  # 12:30:15.123456 UTC


@pytest.fixture
def sessions(migrated_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(migrated_database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def entitlement(entitlement_id: str = "e-1", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": entitlement_id,
        "provider_id": "DEMO-p",
        "account_id": "a-1",
        "product": "product",
        "plan": "basic",
        "new_pending_plan": None,
        "state": "ENTITLEMENT_ACTIVE",
        "offer": None,
        "offer_end_time": WHEN,
        "new_offer_start_time": None,
        "new_offer_end_time": None,
        "subscription_end_time": None,
        "usage_reporting_id": "u-1",
        "cancellation_reason": None,
        "message_to_user": "héllo\nthere",
        "order_id": None,
        "service_enabled": True,
        "service_plan": "basic",
        "service_suspended_reason": None,
        "active_since": WHEN,
        "cancelled_at": None,
        "google_create_time": WHEN - timedelta(days=1),
        "google_update_time": WHEN,
        "deleted_at": None,
        "raw": {"name": "x", "nested": {"list": [1, 2.5, None, True]}, "text": "é"},
    }
    values.update(changes)
    return values


def test_an_entitlement_saved_and_locked_reads_back_in_utc(
    sessions: sessionmaker[Session],
) -> None:
    """Saved (INSERT, then UPDATE) and read with the lock: every column as written, times in UTC,
    `created_at` / `updated_at` set by the defaults, the UPDATE moving `updated_at`."""
    with transaction(sessions) as uow:
        assert uow.lock_entitlement("e-1") is None
        uow.entitlements.save(entitlement(), new=True)
    with sessions() as session:
        created = session.get(Entitlement, "e-1")
        assert created is not None
        first_update = created.updated_at
        assert created.created_at.tzinfo is UTC
    with transaction(sessions) as uow:
        row = uow.lock_entitlement("e-1")
        assert row == entitlement()
        assert row is not None
        assert row["google_update_time"].tzinfo is UTC
        assert row["google_update_time"].hour == 12
        row["plan"] = "pro"
        row["cancelled_at"] = WHEN + timedelta(hours=1)
        uow.entitlements.save(row, new=False)
    with sessions() as session:
        updated = session.get(Entitlement, "e-1")
        assert updated is not None
        assert (updated.plan, updated.cancelled_at) == ("pro", WHEN + timedelta(hours=1))
        assert updated.raw == entitlement()["raw"]
        assert updated.updated_at > first_update


def test_what_we_know_and_the_hooks_parties_come_from_our_rows(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as uow:
        assert uow.entitlements.known("e-1") is None
        assert uow.accounts.hook_parties("a-1")[1] is None
        uow.session.add(Customer(id="c-1", name="Ada", email="ada@example.com", company="Co"))
        uow.session.flush()  # the customer first: the account refers to it
        uow.session.add(
            Account(
                id="a-1",
                provider_id="DEMO-p",
                customer_id="c-1",
                state="ACCOUNT_ACTIVE",
                signup_approval="APPROVED",
                approvals={},
                signed_up_at=WHEN,
                google_update_time=WHEN,
            )
        )
        uow.session.flush()
        uow.entitlements.save(entitlement(), new=True)
        uow.entitlements.save(entitlement("e-2", account_id="a-missing"), new=True)
    with transaction(sessions) as uow:
        known = uow.entitlements.known("e-1")
        assert known is not None
        assert known.update_time == WHEN
        assert known.update_time.tzinfo is UTC
        assert (known.account_id, known.account_update_time, known.account_signed_up) == (
            "a-1",
            WHEN,
            True,
        )
        orphan = uow.entitlements.known("e-2")
        assert orphan is not None
        assert (orphan.account_id, orphan.account_update_time, orphan.account_signed_up) == (
            "a-missing",
            None,
            None,
        )
        account, customer = uow.accounts.hook_parties("a-1")
        assert (account.id, account.state, account.signup_approval) == (
            "a-1",
            "ACCOUNT_ACTIVE",
            "APPROVED",
        )
        assert customer is not None
        assert (customer.id, customer.name, customer.email, customer.company) == (
            "c-1",
            "Ada",
            "ada@example.com",
            "Co",
        )


@pytest.mark.parametrize("defer", [False, True])
def test_inbox_audit_outbox_and_plan_rows_are_stored_as_given(
    sessions: sessionmaker[Session], defer: bool
) -> None:
    """The group commit's deferred rows (`defer`) and the immediate ones end the same: an
    inbox row added once (its defaults filled), settled, audit and outbox rows (a repeated
    idempotency key skipped), plan history read back as the previous plan."""
    event = {"event_id": "ev-1", "payload": "{}", "received_at": WHEN}
    with transaction(sessions, defer_writes=defer) as uow:
        assert uow.inbox.add(event) is True
        assert uow.inbox.add({**event, "payload": "again"}) is False
        uow.entitlements.save(entitlement(), new=True)
        uow.plans.add(
            entitlement_id="e-1",
            plan="pro",
            previous_plan="basic",
            effective_at=WHEN,
            event_id="ev-1",
            recorded_at=WHEN,
        )
        assert uow.plans.previous_plan("e-1") == "basic"
        uow.audit.add(
            [
                {
                    "at": WHEN,
                    "kind": "change",
                    "action": "entitlement.updated",
                    "actor": "listener",
                    "account_id": "a-1",
                    "entitlement_id": "e-1",
                    "event_id": "ev-1",
                    "outcome": "ok",
                    "details": {"changes": {"plan": "pro"}},
                }
            ]
        )
        for payload in ({"first": True}, {"second": True}):
            uow.outbox.add(
                {
                    "hook": "entitlement.plan_changed",
                    "idempotency_key": "k-1",
                    "ordering_key": "e-1",
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": WHEN,
                    "created_at": WHEN,
                }
            )
        uow.inbox.settle("ev-1", status="processed", processed_at=WHEN, last_error=None)
    with sessions() as session:
        inbox = session.scalars(sa.select(InboxMessage)).one()
        assert (inbox.payload, inbox.source, inbox.status, inbox.attempts, inbox.deliveries) == (
            "{}",
            "pull",
            "processed",
            1,
            1,
        )
        assert (inbox.received_at, inbox.processed_at, inbox.subject_update_time) == (
            WHEN,
            WHEN,
            None,
        )
        audit = session.scalars(sa.select(AuditLog)).one()
        assert (audit.at, audit.details) == (WHEN, {"changes": {"plan": "pro"}})
        hook = session.scalars(sa.select(HookOutbox)).one()
        assert (hook.payload, hook.last_error, hook.delivered_at) == ({"first": True}, None, None)
        plan = session.scalars(sa.select(PlanHistory)).one()
        assert (plan.plan, plan.previous_plan, plan.effective_at) == ("pro", "basic", WHEN)


def test_a_naive_time_is_refused_as_sqlalchemy_refuses_it(
    sessions: sessionmaker[Session],
) -> None:
    with pytest.raises(sa.exc.StatementError) as raised, transaction(sessions) as uow:
        uow.entitlements.save(entitlement(google_update_time=datetime(2026, 3, 1)), new=True)
    assert isinstance(raised.value.orig, ValueError)
    assert str(raised.value).startswith(
        "(builtins.ValueError) naive datetime given to a UTC column"
    )
    with sessions() as session:
        assert session.get(Entitlement, "e-1") is None


def test_a_duplicate_entitlement_is_an_integrity_error(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as uow:
        uow.entitlements.save(entitlement(), new=True)
    with pytest.raises(IntegrityError), transaction(sessions) as uow:
        uow.entitlements.save(entitlement(), new=True)
    with transaction(sessions) as uow:  # the pool's connection is usable again
        assert uow.entitlements.known("e-1") is not None
