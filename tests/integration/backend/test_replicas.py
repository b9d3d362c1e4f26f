"""Several replicas on one PostgreSQL database: each replica is a container with its own engine.

The per-entitlement lock, one periodic sync at a time, and `db upgrade` run by replicas that
start together (real processes). Each test fails when its lock is removed (see
docs/operations.md, "Replicas").
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db import migrate
from marketplace_saas.adapters.db.engine import create_engine, session_factory
from marketplace_saas.adapters.db.models import Entitlement, InboxMessage
from marketplace_saas.adapters.db.unit_of_work import transaction
from marketplace_saas.adapters.hooks import validate_receivers
from marketplace_saas.entrypoints import jobs
from marketplace_saas.entrypoints.listener import Listener, processing_callback
from marketplace_saas.service.hooks.dispatch import Dispatcher
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from marketplace_saas.service.procurement.reconcile import SyncResult
from tests.integration.backend import hooks_support
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import encode
from tests.integration.backend.pubsub_support import Channel, channel_fixture
from tests.support import infra

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
__all__ = ["channel_fixture"]
on_postgresql = pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
WAIT = 30.0  # seconds; a bound against a hang, never a timing assertion


def _waiting_for_a_lock(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            return bool(connection.execute(sa.text(query)).scalar())
    finally:
        engine.dispose()


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@on_postgresql
def test_lock_entitlement_holds_a_second_replica_off_even_before_the_row_exists(
    migrated_database_url: str,
) -> None:
    """Two engines: the second `lock_entitlement` of an id no row has yet waits for the first
    transaction to end (a row lock alone would let both go on to insert it)."""
    engines = [create_engine(migrated_database_url) for _ in range(2)]
    first_done = threading.Event()
    second_got: list[float] = []

    def second() -> None:
        with transaction(session_factory(engines[1])) as uow:
            assert uow.lock_entitlement("ent-new") is None
            second_got.append(time.monotonic())

    try:
        with transaction(session_factory(engines[0])) as uow:
            assert uow.lock_entitlement("ent-new") is None
            thread = threading.Thread(target=second)
            thread.start()
            assert _until(lambda: _waiting_for_a_lock(migrated_database_url) or bool(second_got))
            assert not second_got, "the second replica took the lock while the first held it"
            released_at = time.monotonic()
            first_done.set()
        thread.join(WAIT)
        assert second_got
        assert second_got[0] >= released_at
    finally:
        for engine in engines:
            engine.dispose()


def _copies(payload: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The same notification as `count` distinct messages (Pub/Sub's at-least-once, new ids)."""
    return [{**payload, "eventId": str(uuid.uuid4())} for _ in range(count)]


@on_postgresql
def test_two_replicas_apply_one_new_entitlements_messages_one_at_a_time(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Messages of brand-new entitlements spread over two replicas at once: every one is applied
    at its first delivery (no NACK from two inserts of one row) and the records equal the API."""
    replicas = [make_container(approval_policy="manual") for _ in range(2)]
    for _ in range(4):
        emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    notes = [n for n in emulator.notifications(PROVIDER) if "entitlement" in n]
    messages = [m for note in notes for m in _copies(note, 6)]
    jobs_ = [(replicas[i % 2], m) for i, m in enumerate(messages)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda job: handle_message(job[0], encode(job[1])), jobs_))
    assert outcomes == [Disposition.ACK] * len(messages)
    truth = {e.id: (e.state, e.plan) for e in emulator.procurement.entitlements(PROVIDER)}
    with replicas[0].sessions() as session:
        ours = {r.id: (r.state, r.plan) for r in session.scalars(sa.select(Entitlement))}
        statuses = set(session.scalars(sa.select(InboxMessage.status)))
    assert ours == truth
    assert statuses == {"processed"}


class Counting:
    """A listener's callback that counts the NACKs (and the messages) it gives."""

    def __init__(self, inner: Callable[[Any], None]) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.messages = 0
        self.nacks = 0

    def __call__(self, message: Any) -> None:
        counting = self

        class Spy:
            data = message.data
            message_id = message.message_id

            def ack(self) -> None:
                message.ack()

            def nack(self) -> None:
                with counting.lock:
                    counting.nacks += 1
                message.nack()

        with self.lock:
            self.messages += 1
        self.inner(Spy())


@on_postgresql
def test_two_listeners_on_one_subscription_apply_new_entitlements_without_a_retry(
    emulator: Emulator, make_container: ContainerFactory, channel: Channel
) -> None:
    """Two listener replicas (own engines, several callbacks each) pull one subscription that
    carries each new entitlement's notification six times: all processed at first delivery."""
    replicas = [make_container(approval_policy="manual") for _ in range(2)]
    for _ in range(4):
        emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    notes = [n for n in emulator.notifications(PROVIDER) if "entitlement" in n]
    messages = [m for note in notes for m in _copies(note, 6)]
    callbacks = [Counting(processing_callback(r)) for r in replicas]
    listeners = [
        Listener(r.settings, c, subscription=channel.subscription)
        for r, c in zip(replicas, callbacks, strict=True)
    ]
    for listener in listeners:
        listener.start()
    try:
        for message in messages:
            channel.publish(message)

        def processed() -> int:
            with replicas[0].sessions() as session:
                query = sa.select(sa.func.count()).where(InboxMessage.status == "processed")
                return int(session.scalar(query.select_from(InboxMessage)) or 0)

        assert _until(lambda: processed() == len(messages))
    finally:
        for listener in listeners:
            listener.stop()
    assert [c.nacks for c in callbacks] == [0, 0]
    truth = {e.id: (e.state, e.plan) for e in emulator.procurement.entitlements(PROVIDER)}
    with replicas[1].sessions() as session:
        ours = {r.id: (r.state, r.plan) for r in session.scalars(sa.select(Entitlement))}
    assert ours == truth


class HeldProcurement:
    """A Procurement gateway whose first listing waits until told to go on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.listing = threading.Event()
        self.go_on = threading.Event()

    def list_accounts(self, *args: Any, **kwargs: Any) -> Any:
        self.listing.set()
        assert self.go_on.wait(WAIT)
        return self.inner.list_accounts(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@on_postgresql
def test_the_periodic_sync_runs_on_one_replica_at_a_time(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    first, second = make_container(), make_container()
    held = HeldProcurement(first.procurement)
    first.procurement = held
    results: list[object] = []
    runner = threading.Thread(target=lambda: results.append(jobs.sync(first)))
    runner.start()
    try:
        assert held.listing.wait(WAIT)  # the first replica is syncing
        assert jobs.sync(second) == jobs.SYNC_BUSY
    finally:
        held.go_on.set()
        runner.join(WAIT)
    [done] = results
    assert isinstance(done, SyncResult)
    assert done.entitlements_seen == 1
    again = jobs.sync(second)  # the lock went with the first sync: the next turn runs
    assert isinstance(again, SyncResult)


RECEIVER = "python:tests.integration.backend.hooks_support:slow_ordered_call"


@on_postgresql
def test_two_dispatchers_deliver_one_entitlements_hooks_one_at_a_time_in_order(
    make_container: ContainerFactory,
) -> None:
    """Two replicas' dispatchers, three workers each: an entitlement's next hook starts only
    after its previous one is done, in the order they were raised; every hook is delivered."""
    replicas = [make_container(hook_receivers=RECEIVER) for _ in range(2)]
    expected: dict[str, list[str]] = {}
    with replicas[0].unit_of_work() as uow:
        for version in range(4):
            for n in range(5):
                entitlement_id, key = f"ent-{n}", f"entitlement.plan_changed:ent-{n}:{version}"
                data = hooks_support.payload(entitlement_id, plan=str(version)).to_dict()
                enqueue_hook(
                    uow,
                    "entitlement.plan_changed",
                    ordering_key=entitlement_id,
                    idempotency_key=key,
                    payload=data,
                )
                expected.setdefault(entitlement_id, []).append(key)
    hooks_support.ORDERED.reset()
    stop = threading.Event()
    workers = [
        Dispatcher(r, validate_receivers(r.settings), concurrency=3, batch_size=3, lease_seconds=30)
        for r in replicas
    ]
    threads = [
        threading.Thread(target=w.run_forever, args=(stop,), kwargs={"idle_seconds": 0.02})
        for w in workers
    ]
    for thread in threads:
        thread.start()
    try:
        assert _until(lambda: len(set(hooks_support.ORDERED.started)) == 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    assert hooks_support.ORDERED.overlaps == []
    for entitlement_id, keys in expected.items():
        started = [k for k in hooks_support.ORDERED.started if f":{entitlement_id}:" in k]
        assert list(dict.fromkeys(started)) == keys, f"{entitlement_id} out of order: {started}"


def _upgrade(url: str, start: Any, out: Any) -> None:
    start.wait()
    try:
        migrate.upgrade(url)
        out.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        out.put(f"{type(exc).__name__}: {exc}")


def test_replicas_starting_together_migrate_once_and_all_succeed() -> None:
    """Four processes run `db upgrade` on one empty database at the same moment: one migrates,
    the others wait and find nothing to do; every one succeeds."""
    replicas = 4
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(replicas)
    out = context.Queue()
    with infra.postgres_database() as url:
        processes = [
            context.Process(target=_upgrade, args=(url, start, out)) for _ in range(replicas)
        ]
        for process in processes:
            process.start()
        results = [out.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(WAIT)
        assert results == ["ok"] * replicas
        assert migrate.revision_of(url) == migrate.head_revision()
