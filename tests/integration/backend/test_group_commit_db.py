"""The container's group commit on a real database: shared transactions on SQLite, plain ones on
PostgreSQL, and one worker's failure never takes another's rows with it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import InboxMessage
from marketplace_saas.adapters.db.unit_of_work import SqlUnitOfWork
from marketplace_saas.bootstrap import Container


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


def test_concurrent_writes_share_transactions_on_sqlite_and_a_failure_stays_alone(
    container: Container,
) -> None:
    now = container.now()
    sqlite = container.engine.dialect.name == "sqlite"
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
    if sqlite:
        while not container.writes._leading:  # the held transaction is open
            threading.Event().wait(0.001)
    for thread in others:
        thread.start()
    if sqlite:
        while len(container.writes._queue) < len(others):
            threading.Event().wait(0.001)
    release.set()
    for thread in [first, *others]:
        thread.join(30)

    assert set(errors) == {"bad"}
    assert stored_event_ids(container) == {"held", *names} - {"bad"}
    if sqlite:
        # The held one alone, then the seven queued behind it in one shared try (rolled back by
        # "bad"), then each of the seven alone.
        assert container.writes.batches == 2
        assert container.writes.retried_alone == len(others)
    else:
        assert container.writes.batches == 0  # PostgreSQL: a plain transaction per call


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
