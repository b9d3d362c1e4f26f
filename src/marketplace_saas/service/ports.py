"""The repositories the use cases speak to: small protocols, no SQL.

A unit of work (`service.unit_of_work.UnitOfWork`) carries one of each for its transaction. The
database's implementation is `adapters.db.unit_of_work` (prebuilt statements on the listener's hot
path); the in-memory one the unit tests use is `tests/unit/backend/fakes.py`.

Records are what a repository hands out: the use case reads and sets their attributes, and the
unit of work writes them when it commits (the database's ORM rows satisfy these protocols). The
entitlement row of the lifecycle is a plain dict of its columns instead (`EntitlementValues`):
the hot path reads and writes it without an ORM unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo
from marketplace_saas.domain.records import KnownEntitlement

# An entitlement's columns by name (every name of `EntitlementRepository.columns`).
EntitlementValues = dict[str, Any]


# -- records ------------------------------------------------------------------------------------


class AccountRecord(Protocol):
    id: str
    provider_id: str
    customer_id: str | None
    state: str | None
    signup_approval: str | None
    approvals: dict[str, Any]
    signed_up_at: datetime | None
    google_create_time: datetime | None
    google_update_time: datetime | None
    deleted_at: datetime | None


class CustomerRecord(Protocol):
    id: str
    name: str | None
    email: str | None
    company: str | None
    user_identity: str | None
    signup_data: dict[str, Any]
    erased_at: datetime | None


class EntitlementLike(Protocol):
    """An entitlement as the API shows it (`EntitlementView`) or as we store it."""

    @property
    def id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def product(self) -> str | None: ...
    @property
    def plan(self) -> str | None: ...
    @property
    def new_pending_plan(self) -> str | None: ...
    @property
    def usage_reporting_id(self) -> str | None: ...
    @property
    def offer(self) -> str | None: ...
    @property
    def offer_end_time(self) -> datetime | None: ...
    @property
    def subscription_end_time(self) -> datetime | None: ...
    @property
    def cancellation_reason(self) -> str | None: ...
    @property
    def raw(self) -> dict[str, Any]: ...  # the resource as the API last returned it


class EntitlementRecord(EntitlementLike, Protocol):
    """An entitlement as stored (read side: payloads, sign-up pages, provisioning)."""

    @property
    def service_plan(self) -> str | None: ...
    @property
    def service_suspended_reason(self) -> str | None: ...
    @property
    def deleted_at(self) -> datetime | None: ...


class SyncBlockRecord(Protocol):
    """A sync the mass-deletion guard stopped (`service.procurement.sync_guard`)."""

    @property
    def blocked_at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def accounts_live(self) -> int: ...
    @property
    def accounts_deleting(self) -> int: ...
    @property
    def entitlements_live(self) -> int: ...
    @property
    def entitlements_deleting(self) -> int: ...
    @property
    def sample(self) -> dict[str, Any]: ...


class InboxRecord(Protocol):
    event_id: str
    payload: str
    status: str
    attempts: int
    deliveries: int
    processed_at: datetime | None
    last_error: str | None
    traceback: str | None


# -- repositories -------------------------------------------------------------------------------


class InboxRepository(Protocol):
    def add(self, values: dict[str, Any]) -> bool:
        """Store a notification unless its eventId is there; whether it was stored."""

    def count_delivery(self, event_id: str) -> tuple[str, int] | None:
        """One more delivery of a stored eventId: its status and deliveries."""

    def settle(
        self, event_id: str, *, status: str, processed_at: datetime, last_error: str | None
    ) -> None:
        """Count one attempt and record its outcome."""

    def get(self, event_id: str) -> InboxRecord | None: ...

    def unsettled(self, *, received_before: datetime, limit: int) -> list[str]:
        """The eventIds stored before `received_before` and never settled, oldest first."""


class AccountRepository(Protocol):
    def get(self, account_id: str) -> AccountRecord | None: ...

    def add(self, account_id: str, *, provider_id: str) -> AccountRecord:
        """A new account, written when the unit of work commits."""

    def of_customer(self, customer_id: str) -> Sequence[AccountRecord]: ...

    def live_ids(self) -> set[str]:
        """Accounts not marked deleted."""

    def signed_up(self) -> dict[str, bool]:
        """Account id -> whether the customer completed our sign-up page."""

    def claim_signup(self, account_id: str, *, customer_id: str, at: datetime) -> bool:
        """Link the customer and mark the sign-up, only if nobody did yet; whether we did."""

    def hook_parties(self, account_id: str) -> tuple[AccountInfo, CustomerInfo | None]:
        """The account and its customer as a hook payload shows them (one read)."""


class CustomerRepository(Protocol):
    def get(self, customer_id: str) -> CustomerRecord | None: ...

    def by_identity(self, user_identity: str) -> CustomerRecord | None: ...

    def add(self, customer_id: str, *, user_identity: str | None) -> CustomerRecord: ...


class EntitlementRepository(Protocol):
    @property
    def columns(self) -> tuple[str, ...]:
        """Every column `save` writes."""

    def save(self, values: EntitlementValues, *, new: bool) -> None:
        """Write every column of `values`: an insert when `new`, else an update."""

    def get(self, entitlement_id: str) -> EntitlementRecord | None: ...

    def known(self, entitlement_id: str) -> KnownEntitlement | None:
        """What we applied of the entitlement and its account (one read)."""

    def of_account(self, account_id: str) -> Sequence[EntitlementRecord]: ...

    def live_ids(self) -> set[str]:
        """Entitlements not marked deleted."""


class PlanHistoryRepository(Protocol):
    def add(
        self,
        *,
        entitlement_id: str,
        plan: str,
        previous_plan: str | None,
        effective_at: datetime,
        event_id: str | None,
        recorded_at: datetime,
    ) -> None: ...

    def previous_plan(self, entitlement_id: str) -> str | None:
        """The plan before the latest plan change."""

    def rejection_stands(self, entitlement_id: str) -> bool:
        """Whether our latest word on the plan is a rejection we recorded: a
        `reject_plan_change` decision, and no plan change recorded since."""


class AuditRepository(Protocol):
    def add(self, rows: list[dict[str, Any]]) -> None:
        """Audit rows (`at`, `kind`, `action`, `actor`, ids, `outcome`, `details`)."""


class OutboxRepository(Protocol):
    def add(self, values: dict[str, Any]) -> None:
        """Queue a hook unless its idempotency key is there already."""


class SyncBlockRepository(Protocol):
    """Syncs the mass-deletion guard stopped; at most one is open (not resolved) at a time."""

    def open_block(self) -> SyncBlockRecord | None:
        """The open block (the console's banner), if any."""

    def record_block(
        self,
        *,
        at: datetime,
        actor: str,
        accounts_live: int,
        accounts_deleting: int,
        entitlements_live: int,
        entitlements_deleting: int,
        sample: dict[str, Any],
    ) -> None:
        """Open a block, or bring the open one up to date (the guard stopped another sync)."""

    def resolve_blocks(self, *, at: datetime, by: str, resolution: str) -> int:
        """Close every open block (`confirmed` or `cleared`); how many were open."""
