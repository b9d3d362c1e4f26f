"""`resume_unsettled` and the `inbox` job: a notification stored but never settled, that Pub/Sub
no longer delivers (a dead-letter policy, a lost lease), is processed again from the inbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from marketplace_emulator.faults import FaultSettings, ProcurementFaults
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import AuditLog, InboxMessage
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.entrypoints import jobs
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from marketplace_saas.service.procurement.resume import RESUME, resume_unsettled
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import encode, entitlement_row, inbox

pytestmark = pytest.mark.integration

PRODUCT = "example-product"
AGE = 600  # INBOX_RESUME_AFTER_SECONDS in these tests


class Unreachable:
    """A Procurement gateway whose every call fails as a bug would: the message stays
    `retrying`, as if the listener had NACKed it and Pub/Sub never delivered it again."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.provider_id = inner.provider_id

    def __getattr__(self, name: str) -> Any:
        if callable(getattr(self._inner, name)):
            raise RuntimeError(f"{name}: not reached")
        return getattr(self._inner, name)


def _creation(emulator: Emulator) -> dict[str, Any]:
    _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    return next(
        p
        for p in emulator.notifications(PROVIDER)
        if p["eventType"] == "ENTITLEMENT_CREATION_REQUESTED"
        and p["entitlement"]["id"] == entitlement.id
    )


def broken_again(container: Container) -> Container:
    """The same database, with a Procurement gateway that fails every call."""
    return bootstrap(
        container.settings, procurement=Unreachable(container.procurement), engine=container.engine
    )


def _left_retrying(container: Container, payload: dict[str, Any]) -> str:
    assert handle_message(broken_again(container), encode(payload)) is Disposition.NACK
    event_id = str(payload["eventId"])
    assert inbox(container, event_id).status == "retrying"
    return event_id


def _age(container: Container, event_id: str, seconds: float) -> None:
    """Pretend the message was stored `seconds` ago."""
    with container.sessions.begin() as session:
        session.execute(
            sa.update(InboxMessage)
            .where(InboxMessage.event_id == event_id)
            .values(received_at=container.now() - timedelta(seconds=seconds))
        )


def _resume_calls(container: Container) -> int:
    statement = sa.select(sa.func.count()).where(
        AuditLog.kind == "api_call", AuditLog.actor == RESUME
    )
    with container.sessions() as session:
        return int(session.scalar(statement) or 0)


def test_a_retrying_message_pubsub_no_longer_delivers_is_processed_from_the_inbox(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto", inbox_resume_after_seconds=AGE)
    creation = _creation(emulator)
    event_id = _left_retrying(container, creation)
    entitlement_id = str(creation["entitlement"]["id"])

    assert resume_unsettled(container).count == 0  # too young: Pub/Sub may still deliver it
    assert inbox(container, event_id).status == "retrying"

    assert handle_message(broken_again(container), encode(creation)) is Disposition.NACK
    _age(container, event_id, AGE + 1)
    with capture_logs() as logs:
        resumed = resume_unsettled(container)
    assert dict(resumed.statuses) == {"processed": 1}
    [said] = [entry for entry in logs if entry["event"] == "notification.resumed"]
    assert (said["event_id"], said["was"], said["attempts"], said["deliveries"]) == (
        event_id,
        "retrying",
        2,
        2,
    )
    row = inbox(container, event_id)
    assert (row.status, row.attempts) == ("processed", 3)
    assert entitlement_row(container, entitlement_id).service_enabled  # approved at last
    truth = emulator.procurement.get_entitlement(PROVIDER, entitlement_id)
    assert truth.state == "ENTITLEMENT_ACTIVE"
    assert _resume_calls(container) > 0  # its calls are the resume's, in the audit log

    calls = _resume_calls(container)
    assert resume_unsettled(container).count == 0  # settled: never processed again
    assert _resume_calls(container) == calls
    # A late redelivery of it is acknowledged without being processed again.
    assert handle_message(container, encode(creation)) is Disposition.ACK


def test_a_message_stored_then_abandoned_by_a_crash_is_processed_from_the_inbox(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """`received`: stored, then the process died before settling it."""
    container = make_container(approval_policy="auto", inbox_resume_after_seconds=AGE)
    creation = _creation(emulator)
    event_id = _left_retrying(container, creation)
    with container.sessions.begin() as session:  # as the crash left it: stored, no attempt
        session.execute(
            sa.update(InboxMessage)
            .where(InboxMessage.event_id == event_id)
            .values(status="received", attempts=0, last_error=None, traceback=None)
        )
    _age(container, event_id, AGE + 1)
    assert dict(resume_unsettled(container).statuses) == {"processed": 1}
    assert inbox(container, event_id).status == "processed"


def test_a_resume_that_fails_again_leaves_the_message_retrying_until_its_attempts_run_out(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(
        approval_policy="auto", inbox_resume_after_seconds=AGE, max_delivery_attempts=3
    )
    event_id = _left_retrying(container, _creation(emulator))
    _age(container, event_id, AGE + 1)
    emulator.faults.configure(
        FaultSettings(procurement=ProcurementFaults(error_rate=1.0, statuses=[503]))
    )
    assert dict(resume_unsettled(container).statuses) == {"retrying": 1}
    row = inbox(container, event_id)
    assert (row.status, row.attempts) == ("retrying", 2)
    assert row.last_error is not None
    assert row.last_error.startswith("transient: TransientProcurementError")
    assert dict(resume_unsettled(container).statuses) == {"parked": 1}  # the third attempt
    assert resume_unsettled(container).count == 0  # parked: for an operator's replay


def test_resume_takes_the_oldest_first_and_at_most_its_batch(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto", inbox_resume_after_seconds=AGE)
    first = _left_retrying(container, _creation(emulator))
    second = _left_retrying(container, _creation(emulator))
    _age(container, first, AGE + 100)
    _age(container, second, AGE + 200)
    assert resume_unsettled(container, limit=1).count == 1
    assert inbox(container, second).status == "processed"
    assert inbox(container, first).status == "retrying"


def test_the_inbox_job_runs_in_serve_and_skips_while_another_replica_resumes(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto", inbox_resume_after_seconds=AGE)
    assert "inbox" in [job.name for job in jobs.jobs(container.settings)]
    event_id = _left_retrying(container, _creation(emulator))
    _age(container, event_id, AGE + 1)
    with container.held_lock("inbox-resume") as mine:
        assert mine
        assert jobs.resume_inbox(container) == jobs.RESUME_BUSY
    assert inbox(container, event_id).status == "retrying"
    assert jobs.resume_inbox(container) == {"processed": 1}
    assert inbox(container, event_id).status == "processed"
    assert jobs.resume_inbox(container) is None  # nothing left: logged at debug level


def test_a_stored_message_that_no_longer_parses_is_marked_invalid_not_taken_every_run(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Stored under another MARKETPLACE_PROVIDER_ID (the setting changed since): the job
    records why and leaves it, instead of meeting it first in every run."""
    container = make_container(approval_policy="auto", inbox_resume_after_seconds=AGE)
    event_id = _left_retrying(container, _creation(emulator))
    _age(container, event_id, AGE + 1)
    renamed = make_container(
        approval_policy="auto", inbox_resume_after_seconds=AGE, marketplace_provider_id="OTHER"
    )
    assert dict(resume_unsettled(renamed).statuses) == {"invalid": 1}
    row = inbox(container, event_id)
    assert row.status == "invalid"
    assert row.last_error is not None
    assert "not ours" in row.last_error
    assert resume_unsettled(renamed).count == 0
