"""SQLAlchemy 2.0 typed models: the provider's record of every customer.

Tables, and who writes them:

    customers        our own customers (sign-up data; personal data erased on ACCOUNT_DELETED)
    accounts         procurement accounts (id = the procurement account id), approvals, sign-up
    entitlements     keyed on the procurement entitlement id; our service on/off and at which plan
    plan_history     every plan an entitlement has had, and when it took effect
    inbox            raw procurement notifications (unique eventId), attempts, errors, status
    audit_log        every change we made and every call we made to Google
    hook_outbox      provisioning hooks to deliver (transactional outbox)
    usage_records    usage ingested from the provider's app (unique caller id)
    usage_reports    the report ledger: one row per Service Control operation
    sign_in_failures failed console sign-ins per operator and per client address, per window
    operator_sessions console sessions, so that logout and removal end them on every replica
    sync_blocks      syncs the mass-deletion guard stopped (the console's banner), until resolved

Times are timezone-aware UTC (`UtcDateTime` stores naive UTC on SQLite and reads it back aware).
Every change to this module needs an Alembic migration: `tests/integration/test_migrations.py`
fails when models and migrations drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite has no time zones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSONType}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    company: Mapped[str | None] = mapped_column(sa.String(200))
    # google.user_identity from the sign-up JWT: recognises a returning human.
    user_identity: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    signup_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    erased_at: Mapped[datetime | None]


class Account(TimestampMixin, Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)  # procurement account id
    provider_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    customer_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str | None] = mapped_column(sa.String(64))  # ACCOUNT_ACTIVE, ...
    signup_approval: Mapped[str | None] = mapped_column(sa.String(32))  # PENDING/APPROVED/REJECTED
    approvals: Mapped[dict[str, Any]] = mapped_column(default=dict)  # name -> {state, reason, ...}
    signed_up_at: Mapped[datetime | None]
    google_create_time: Mapped[datetime | None]
    google_update_time: Mapped[datetime | None]  # updateTime of the version we applied
    deleted_at: Mapped[datetime | None]  # ACCOUNT_DELETED received


class Entitlement(TimestampMixin, Base):
    __tablename__ = "entitlements"
    __table_args__ = (sa.Index("ix_entitlements_state_product_plan", "state", "product", "plan"),)

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)  # procurement entitlement id
    provider_id: Mapped[str] = mapped_column(sa.String(200))
    # No foreign key: an entitlement's notification may arrive before its account's.
    account_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    product: Mapped[str | None] = mapped_column(sa.String(300))
    plan: Mapped[str | None] = mapped_column(sa.String(200))
    new_pending_plan: Mapped[str | None] = mapped_column(sa.String(200))
    state: Mapped[str] = mapped_column(sa.String(64))
    offer: Mapped[str | None] = mapped_column(sa.String(500))
    offer_end_time: Mapped[datetime | None]
    new_offer_start_time: Mapped[datetime | None]
    new_offer_end_time: Mapped[datetime | None]
    subscription_end_time: Mapped[datetime | None]
    usage_reporting_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(200))
    message_to_user: Mapped[str | None] = mapped_column(sa.Text)
    order_id: Mapped[str | None] = mapped_column(sa.String(200))
    # Our side: is the provider's service on for this entitlement, and at which plan.
    service_enabled: Mapped[bool] = mapped_column(default=False)
    service_plan: Mapped[str | None] = mapped_column(sa.String(200))
    service_suspended_reason: Mapped[str | None] = mapped_column(sa.String(200))
    active_since: Mapped[datetime | None]  # when it first became ACTIVE (first usage window)
    cancelled_at: Mapped[datetime | None]  # when it became CANCELLED (last usage window ends)
    google_create_time: Mapped[datetime | None]
    google_update_time: Mapped[datetime | None]  # updateTime of the version we applied
    deleted_at: Mapped[datetime | None]  # ENTITLEMENT_DELETED: 404 from the API
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the last GET, as Google sent it


class PlanHistory(Base):
    __tablename__ = "plan_history"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entitlement_id: Mapped[str] = mapped_column(
        sa.ForeignKey("entitlements.id", ondelete="CASCADE"), index=True
    )
    plan: Mapped[str] = mapped_column(sa.String(200))
    previous_plan: Mapped[str | None] = mapped_column(sa.String(200))
    effective_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(sa.String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxMessage(Base):
    """A raw notification, stored before anything else happens to it."""

    __tablename__ = "inbox"
    __table_args__ = (sa.Index("ix_inbox_status_received_at", "status", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # eventId, or a digest of the raw bytes when the message has none (invalid input).
    event_id: Mapped[str] = mapped_column(sa.String(200), unique=True)
    event_type: Mapped[str | None] = mapped_column(sa.String(100))
    provider_id: Mapped[str | None] = mapped_column(sa.String(200))
    subject_kind: Mapped[str | None] = mapped_column(sa.String(20))  # account | entitlement
    subject_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    subject_update_time: Mapped[datetime | None]
    payload: Mapped[str] = mapped_column(sa.Text)  # the raw bytes as received (UTF-8, replaced)
    message_id: Mapped[str | None] = mapped_column(sa.String(200))  # Pub/Sub messageId
    source: Mapped[str] = mapped_column(sa.String(20), default="pull")  # pull | push | replay
    # received | processed | ignored | invalid | retrying | parked
    status: Mapped[str] = mapped_column(sa.String(20), default="received")
    attempts: Mapped[int] = mapped_column(default=0)
    deliveries: Mapped[int] = mapped_column(default=1)  # times Pub/Sub handed it to us
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    traceback: Mapped[str | None] = mapped_column(sa.Text)


class AuditLog(Base):
    """Every change we made to our records and every call we made to Google."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_entitlement_id_at", "entitlement_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  # change | api_call
    action: Mapped[str] = mapped_column(sa.String(100))
    actor: Mapped[str] = mapped_column(sa.String(200))  # listener | signup | operator:NAME | sync
    account_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    entitlement_id: Mapped[str | None] = mapped_column(sa.String(200))
    event_id: Mapped[str | None] = mapped_column(sa.String(200))
    outcome: Mapped[str | None] = mapped_column(sa.String(50))  # ok | benign:... | error:...
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HookOutbox(Base):
    """A provisioning hook to deliver, written in the same transaction as the state change."""

    __tablename__ = "hook_outbox"
    __table_args__ = (
        sa.Index("ix_hook_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_hook_outbox_ordering_key_id", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    hook: Mapped[str] = mapped_column(sa.String(64))  # entitlement.active, entitlement.cancelled...
    idempotency_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    ordering_key: Mapped[str] = mapped_column(sa.String(200))  # entitlement id (or account id)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")  # pending|delivered|dead
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class UsageRecord(Base):
    """One usage record from the provider's app; `record_id` is the caller's idempotency key."""

    __tablename__ = "usage_records"
    __table_args__ = (
        sa.Index("ix_usage_records_window", "entitlement_id", "metric", "window_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(sa.String(200), unique=True)
    entitlement_id: Mapped[str] = mapped_column(sa.String(200))
    metric: Mapped[str] = mapped_column(sa.String(200))  # the provider's own name (e.g. requests)
    value: Mapped[Decimal] = mapped_column(sa.Numeric(38, 9))
    time: Mapped[datetime]  # when the usage happened, as the caller said
    window_start: Mapped[datetime]  # the window it is counted in (differs when carried forward)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    operation_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)  # once reported


class UsageReport(Base):
    """The report ledger: one Service Control operation, pending -> sent -> accepted/rejected."""

    __tablename__ = "usage_reports"
    __table_args__ = (
        sa.Index("ix_usage_reports_entitlement_id_window_start", "entitlement_id", "window_start"),
        sa.Index("ix_usage_reports_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(sa.String(64), unique=True)  # UUIDv5
    entitlement_id: Mapped[str] = mapped_column(sa.String(200))
    consumer_id: Mapped[str] = mapped_column(sa.String(200))
    plan: Mapped[str] = mapped_column(sa.String(200))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    metric_values: Mapped[dict[str, Any]] = mapped_column(default=dict)  # metric id -> value
    user_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class SignInFailure(Base):
    """Failed console sign-ins of one subject (an operator or a client address) in one window."""

    __tablename__ = "sign_in_failures"

    scope: Mapped[str] = mapped_column(sa.String(20), primary_key=True)  # operator | address
    subject: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, index=True)
    failures: Mapped[int] = mapped_column(default=0)


class OperatorSession(Base):
    """A console session; its id travels in the signed cookie, its state stays here."""

    __tablename__ = "operator_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(sa.String(64), index=True)
    # A digest of the operator's configured password hash: a new password ends old sessions.
    credential: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class SyncBlock(Base):
    """A sync the mass-deletion guard stopped; open (the console's banner) until resolved."""

    __tablename__ = "sync_blocks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    blocked_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))  # sync | operator:NAME
    accounts_live: Mapped[int] = mapped_column(default=0)
    accounts_deleting: Mapped[int] = mapped_column(default=0)
    entitlements_live: Mapped[int] = mapped_column(default=0)
    entitlements_deleting: Mapped[int] = mapped_column(default=0)
    sample: Mapped[dict[str, Any]] = mapped_column(default=dict)  # kind -> a few ids
    # Set when a sync ran its deletions: `confirmed` by an operator, or `cleared` (within limits).
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(sa.String(200))
    resolution: Mapped[str | None] = mapped_column(sa.String(20))
