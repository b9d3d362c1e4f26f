"""The container's group commit on a real database: shared transactions on SQLite and PostgreSQL,
one worker's failure never takes another's rows with it, and on PostgreSQL a shared transaction
never waits for another transaction's entitlement lock (its works run alone instead)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.engine import create_engine, session_factory
from marketplace_saas.adapters.db.models import AuditLog, HookOutbox, InboxMessage
from marketplace_saas.adapters.db.unit_of_work import SqlUnitOfWork, transaction
from marketplace_saas.bootstrap import Container

WAIT = 30.0  # seconds; a bound against a hang, never a timing assertion


def inbox_values(event_id: str, now: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "ENTITLEMENT_ACTIVE",
        "provider_id": "DEMO-provider",
        "subject_kind": "entitlement",
        "subject_id": "e-1",
        "subject_update_time": None,
        "payload": "{}",
        "message_id": None,
        "source": "pull",
        "status": "received",
        "attempts": 0,
        "deliveries": 1,
        "received_at": now,
    }


def stored_event_ids(container: Container) -> set[str]:
    with container.sessions() as session:
        return set(session.scalars(sa.select(InboxMessage.event_id)))


def test_concurrent_writes_share_transactions_and_a_failure_stays_alone(
    container: Container,
) -> None:
    now = container.now()
    release = threading.Event()
    errors: dict[str, BaseException] = {}

    def insert(event_id: str, *, hold: bool = False, fail: bool = False) -> Any:
        def work(uow: SqlUnitOfWork) -> bool:
            inserted = uow.inbox.add(inbox_values(event_id, now))
            if hold:
                release.wait(10)
            if fail:
                raise ValueError(f"{event_id} fails after its insert")
            return inserted

        return work

    def call(event_id: str, **kwargs: Any) -> None:
        try:
            assert container.writes.run(insert(event_id, **kwargs)) is True
        except ValueError as exc:
            errors[event_id] = exc

    first = threading.Thread(target=call, args=("held",), kwargs={"hold": True})
    first.start()
    names = [f"e{i}" for i in range(6)] + ["bad"]
    others = [
        threading.Thread(target=call, args=(name,), kwargs={"fail": name == "bad"})
        for name in names
    ]
    while not container.writes._leading:  # the held transaction is open
        threading.Event().wait(0.001)
    for thread in others:
        thread.start()
    while len(container.writes._queue) < len(others):
        threading.Event().wait(0.001)
    release.set()
    for thread in [first, *others]:
        thread.join(30)

    assert set(errors) == {"bad"}
    assert stored_event_ids(container) == {"held", *names} - {"bad"}
    # The held one alone, then the seven queued behind it in one shared try (rolled back by
    # "bad"), then each of the seven alone.
    assert container.writes.batches == 2
    assert container.writes.retried_alone == len(others)


@pytest.mark.parametrize("count", [1, 20])
def test_every_caller_gets_its_own_result(container: Container, count: int) -> None:
    now = container.now()
    results: dict[int, Any] = {}

    def call(i: int) -> None:
        def work(uow: SqlUnitOfWork) -> tuple[int, bool]:
            return i, uow.inbox.add(inbox_values(f"event-{i % 5}", now))

        results[i] = container.writes.run(work)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == list(range(count))
    assert all(results[i][0] == i for i in results)
    # Each eventId is inserted once, whatever the grouping: the others found it there.
    assert sum(inserted for _, inserted in results.values()) == min(count, 5)
    assert stored_event_ids(container) == {f"event-{i}" for i in range(min(count, 5))}


@pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
def test_a_shared_transaction_never_waits_for_another_replicas_entitlement_lock(
    container: Container, migrated_database_url: str
) -> None:
    """Another replica holds ent-busy's lock: the batch [ent-free, ent-busy] fails at once
    (LockBusy) instead of waiting with ent-free's lock held; both run alone, ent-free commits
    while the other replica still holds its lock, ent-busy once it lets go."""
    now = container.now()
    other = create_engine(migrated_database_url)
    leader_holds, release_leader = threading.Event(), threading.Event()
    other_holds, release_other = threading.Event(), threading.Event()
    done: dict[str, bool] = {}

    def hold_the_lead(uow: SqlUnitOfWork) -> bool:
        leader_holds.set()
        return release_leader.wait(WAIT)

    def locker(entitlement_id: str) -> Any:
        def work(uow: SqlUnitOfWork) -> bool:
            uow.lock_entitlement(entitlement_id)
            return uow.inbox.add(inbox_values(entitlement_id, now))

        return work

    def call(name: str, work: Any) -> None:
        done[name] = container.writes.run(work)

    def other_replica() -> None:
        with transaction(session_factory(other)) as uow:
            uow.lock_entitlement("ent-busy")
            other_holds.set()
            release_other.wait(WAIT)

    try:
        holder = threading.Thread(target=other_replica)
        holder.start()
        assert other_holds.wait(WAIT)
        leader = threading.Thread(target=call, args=("leader", hold_the_lead))
        leader.start()
        assert leader_holds.wait(WAIT)
        threads = [
            threading.Thread(target=call, args=(name, locker(name)))
            for name in ("ent-free", "ent-busy")
        ]
        for thread in threads:
            thread.start()
        while len(container.writes._queue) < 2:
            threading.Event().wait(0.001)
        release_leader.set()
        threads[0].join(WAIT)
        assert done.get("ent-free") is True, "ent-free waited behind another replica's lock"
        assert "ent-busy" not in done  # alone now, waiting for the other replica's lock
        assert container.writes.retried_alone == 2
        release_other.set()
        holder.join(WAIT)
        threads[1].join(WAIT)
        leader.join(WAIT)
        assert done == {"leader": True, "ent-free": True, "ent-busy": True}
        assert stored_event_ids(container) == {"ent-free", "ent-busy"}
    finally:
        release_leader.set()
        release_other.set()
        other.dispose()


def test_audit_outbox_and_settlements_of_a_batch_are_written_at_its_commit(
    container: Container,
) -> None:
    """The deferred rows of every work in a shared transaction are in the database after it."""
    now = container.now()
    release = threading.Event()
    holding = threading.Event()

    def hold(uow: SqlUnitOfWork) -> None:
        holding.set()
        release.wait(WAIT)

    def work(i: int) -> Any:
        def write(uow: SqlUnitOfWork) -> None:
            uow.inbox.add(inbox_values(f"event-{i}", now))
            uow.audit.add([audit_row(i, now), audit_row(i, now)])
            uow.outbox.add(outbox_row(i, now))
            uow.inbox.settle(f"event-{i}", status="processed", processed_at=now, last_error=None)

        return write

    threads = [threading.Thread(target=container.writes.run, args=(hold,))]
    threads[0].start()
    assert holding.wait(WAIT)
    threads += [threading.Thread(target=container.writes.run, args=(work(i),)) for i in range(4)]
    for thread in threads[1:]:
        thread.start()
    while len(container.writes._queue) < 4:
        threading.Event().wait(0.001)
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert container.writes.batches == 2  # the held one, then the four together
    with container.sessions() as session:
        rows = session.execute(sa.select(InboxMessage.event_id, InboxMessage.status)).all()
        statuses = {row.event_id: row.status for row in rows}
        audit = session.scalar(sa.select(sa.func.count()).select_from(AuditLog))
        hooks = set(session.scalars(sa.select(HookOutbox.idempotency_key)))
    assert statuses == {f"event-{i}": "processed" for i in range(4)}
    assert audit == 8
    assert hooks == {f"test:{i}" for i in range(4)}


def audit_row(i: int, now: Any) -> dict[str, Any]:
    return {
        "at": now,
        "kind": "change",
        "action": "test",
        "actor": "test",
        "account_id": None,
        "entitlement_id": f"e-{i}",
        "event_id": f"event-{i}",
        "outcome": "ok",
        "details": {},
    }


def outbox_row(i: int, now: Any) -> dict[str, Any]:
    return {
        "hook": "entitlement.active",
        "idempotency_key": f"test:{i}",
        "ordering_key": f"e-{i}",
        "payload": {},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
