"""The hook dispatcher against a real database and a real HTTP receiver that checks signatures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import HookOutbox
from marketplace_saas.adapters.hooks import validate_receivers
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.domain.hooks import HookPayload, RetryPolicy
from marketplace_saas.service.hooks import admin as hooks_admin
from marketplace_saas.service.hooks.dispatch import Dispatcher
from marketplace_saas.service.hooks.outbox import enqueue_hook
from tests.integration.backend import hooks_support
from tests.integration.backend.conftest import backend_settings
from tests.integration.backend.hooks_support import (
    SECRET,
    StepClock,
    WebhookServer,
    garbage_server,
    payload,
    webhook_server,
)
from tests.support.infra import free_port

Factory = Callable[..., Container]


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def make(migrated_database_url: str, clock: StepClock) -> Iterator[Factory]:
    made: list[Container] = []

    def factory(receivers: str, *, real_clock: bool = False, **overrides: Any) -> Container:
        settings = backend_settings(
            migrated_database_url,
            "http://127.0.0.1:9",
            hook_receivers=receivers,
            hook_webhook_secret=SECRET,
            hook_timeout_seconds=overrides.pop("hook_timeout_seconds", 2.0),
            hook_max_attempts=overrides.pop("hook_max_attempts", 3),
            **overrides,
        )
        container = bootstrap(settings, clock=None if real_clock else clock)
        made.append(container)
        return container

    yield factory
    for container in made:
        container.close()


def enqueue(container: Container, hook: str, entitlement_id: str, version: str) -> int:
    key = f"{hook}:{entitlement_id}:{version}"
    with container.unit_of_work() as uow:
        enqueue_hook(
            uow,
            hook,
            ordering_key=entitlement_id,
            idempotency_key=key,
            payload=payload(entitlement_id, plan=version).to_dict(),
        )
    with container.sessions() as session:
        return session.scalars(
            sa.select(HookOutbox.id).where(HookOutbox.idempotency_key == key)
        ).one()


def row(container: Container, item_id: int) -> HookOutbox:
    with container.sessions() as session:
        found = session.get(HookOutbox, item_id)
        assert found is not None
        return found


def dispatcher(container: Container, **kwargs: Any) -> Dispatcher:
    kwargs.setdefault("policy", RetryPolicy(max_attempts=3, base_seconds=10, cap_seconds=60))
    return Dispatcher(container, validate_receivers(container.settings), **kwargs)


def test_a_hook_is_delivered_signed_with_its_idempotency_key_and_marked_delivered(
    make: Factory,
) -> None:
    with webhook_server() as server:
        container = make(server.url)
        item = enqueue(container, "entitlement.active", "ent-1", "v1")
        result = dispatcher(container).run_once()
    assert result.delivered == [item]
    assert server.rejected == []
    [got] = server.received
    assert got.hook == "entitlement.active"
    assert got.idempotency_key == "entitlement.active:ent-1:v1"
    assert got.event["id"] == got.idempotency_key
    assert got.event["data"]["entitlement"]["id"] == "ent-1"
    assert got.event["data"]["plan"] == "v1"
    stored = row(container, item)
    assert stored.status == "delivered"
    assert stored.delivered_at is not None
    assert stored.attempts == 1


def test_a_receiver_with_another_secret_rejects_our_webhook_and_we_retry(make: Factory) -> None:
    """The receiver helper refuses a signature it cannot verify; the item is not lost."""
    with webhook_server(WebhookServer(secret="a-different-secret-0123456789abcdef")) as server:
        container = make(server.url)
        item = enqueue(container, "entitlement.active", "ent-1", "v1")
        result = dispatcher(container).run_once()
    assert result.failed == [item]
    assert len(server.rejected) == 1
    assert server.received == []
    assert "HTTP 400" in (row(container, item).last_error or "")


def test_items_of_one_key_go_one_per_round_in_order_and_other_keys_alongside(
    make: Factory,
) -> None:
    with webhook_server() as server:
        container = make(server.url)
        a1 = enqueue(container, "entitlement.active", "ent-a", "1")
        a2 = enqueue(container, "entitlement.plan_changed", "ent-a", "2")
        b1 = enqueue(container, "entitlement.active", "ent-b", "1")
        a3 = enqueue(container, "entitlement.cancelled", "ent-a", "3")
        worker = dispatcher(container)
        assert sorted(worker.run_once().delivered) == [a1, b1]
        assert worker.run_once().delivered == [a2]
        assert worker.run_once().delivered == [a3]
        assert worker.run_once().attempted == 0
    per_key = [item.idempotency_key for item in server.received if item.ordering_key == "ent-a"]
    assert per_key == [
        "entitlement.active:ent-a:1",
        "entitlement.plan_changed:ent-a:2",
        "entitlement.cancelled:ent-a:3",
    ]


def test_a_failing_receiver_backs_off_then_dead_letters_then_a_manual_retry_delivers(
    make: Factory, clock: StepClock
) -> None:
    status = {"code": 503}
    server = WebhookServer(behaviour=lambda _event: (status["code"], 0.0))
    with webhook_server(server):
        container = make(server.url)
        item = enqueue(container, "entitlement.active", "ent-1", "v1")
        worker = dispatcher(container)
        delays = []
        for attempt in (1, 2):
            assert worker.run_once().failed == [item]
            stored = row(container, item)
            assert stored.status == "pending"
            assert stored.attempts == attempt
            assert "HTTP 503" in (stored.last_error or "")
            delays.append(stored.next_attempt_at - clock())
            assert worker.run_once().attempted == 0  # not due before its backoff
            clock.advance(seconds=delays[-1].total_seconds())
        # Exponential with jitter: attempt n waits between half and all of 10 * 2**(n-1) s.
        assert timedelta(seconds=5) <= delays[0] <= timedelta(seconds=10)
        assert timedelta(seconds=10) <= delays[1] <= timedelta(seconds=20)
        assert worker.run_once().dead == [item]
        assert row(container, item).status == "dead"
        clock.advance(hours=1)
        assert worker.run_once().attempted == 0  # dead items are never picked up again
        with container.reading() as uow:
            [listed] = hooks_admin.list_items(uow, status="dead")
        assert listed.id == item
        status["code"] = 200
        with container.unit_of_work() as uow:
            assert hooks_admin.retry_all_dead(uow, now=clock()) == [item]
        assert worker.run_once().delivered == [item]
    assert server.keys() == ["entitlement.active:ent-1:v1"]
    assert row(container, item).status == "delivered"


@pytest.mark.parametrize("kind", ["timeout", "http_500", "garbage", "unreachable"])
def test_a_bad_receiver_attempt_is_recorded_and_retried_never_dropped(
    make: Factory, kind: str
) -> None:
    released = threading.Event()

    def answer_after_the_dispatcher_gave_up(_event: dict[str, Any]) -> tuple[int, float]:
        released.wait(30)
        return 200, 0.0

    # Only the slow receiver races the timeout, and it always loses: it holds its answer until
    # the attempt is over. The others get a timeout no loaded machine reaches, so that what is
    # recorded is their own failure.
    slow = WebhookServer(behaviour=answer_after_the_dispatcher_gave_up)
    failing = WebhookServer(behaviour=lambda _event: (500, 0.0))
    with webhook_server(slow) as s1, webhook_server(failing) as s2, garbage_server() as junk:
        url = {
            "timeout": s1.url,
            "http_500": s2.url,
            "garbage": junk,
            "unreachable": f"http://127.0.0.1:{free_port()}/hooks",
        }[kind]
        container = make(url, hook_timeout_seconds=0.3 if kind == "timeout" else 30.0)
        item = enqueue(container, "entitlement.cancelled", "ent-1", "v1")
        try:
            result = dispatcher(container).run_once()
        finally:
            released.set()
    assert result.failed == [item]
    stored = row(container, item)
    assert stored.status == "pending"
    assert stored.attempts == 1
    expected = {
        "timeout": "timed out",
        "http_500": "HTTP 500",
        "garbage": "unreachable",
        "unreachable": "unreachable",
    }[kind]
    assert expected in (stored.last_error or "")


def test_one_entitlements_failing_hook_does_not_hold_back_other_entitlements(
    make: Factory,
) -> None:
    server = WebhookServer(
        behaviour=lambda event: (500 if event["data"]["entitlement"]["id"] == "ent-bad" else 200, 0)
    )
    with webhook_server(server):
        container = make(server.url, hook_max_attempts=1)
        bad = enqueue(container, "entitlement.active", "ent-bad", "1")
        later_bad = enqueue(container, "entitlement.cancelled", "ent-bad", "2")
        good = [enqueue(container, "entitlement.active", f"ent-{n}", "1") for n in range(3)]
        result = dispatcher(container, policy=RetryPolicy(max_attempts=1)).drain()
    assert result.dead == [bad]
    assert sorted(result.delivered) == good
    # The dead item holds back its own key only, and the listing says by which item.
    assert row(container, later_bad).status == "pending"
    with container.reading() as uow:
        assert hooks_admin.get_item(uow, later_bad).blocked_by == bad


def test_discarding_a_dead_item_releases_the_later_items_of_its_key(make: Factory) -> None:
    status = {"code": 500}
    server = WebhookServer(behaviour=lambda _event: (status["code"], 0.0))
    with webhook_server(server):
        container = make(server.url)
        first = enqueue(container, "entitlement.active", "ent-1", "1")
        second = enqueue(container, "entitlement.cancelled", "ent-1", "2")
        worker = dispatcher(container, policy=RetryPolicy(max_attempts=1))
        assert worker.run_once().dead == [first]
        status["code"] = 200
        assert worker.run_once().attempted == 0  # blocked behind the dead item
        with container.unit_of_work() as uow:
            hooks_admin.discard(uow, first, reason="workspace created by hand")
        assert worker.run_once().delivered == [second]
    assert row(container, first).status == "discarded"
    assert "workspace created by hand" in (row(container, first).last_error or "")


def test_a_dispatcher_that_died_mid_delivery_loses_its_lease_and_the_item_is_redelivered(
    make: Factory, clock: StepClock
) -> None:
    with webhook_server() as server:
        container = make(server.url)
        item = enqueue(container, "entitlement.active", "ent-1", "v1")
        crashed = dispatcher(container, lease_seconds=30)
        [claim] = crashed._claim_batch()  # claimed, then the process "dies" before delivering
        survivor = dispatcher(container, lease_seconds=30)
        assert survivor.run_once().attempted == 0  # still leased to the dead dispatcher
        clock.advance(seconds=31)
        assert survivor.run_once().delivered == [item]
        # The dead dispatcher's late outcome cannot overwrite the survivor's claim.
        assert crashed._record(claim, status="dead") is False
    assert row(container, item).status == "delivered"
    assert server.keys() == ["entitlement.active:ent-1:v1"]


def test_two_dispatchers_deliver_everything_in_order_per_key_with_stable_keys(
    make: Factory,
) -> None:
    """Concurrent dispatchers, each a replica with its own engine: nothing lost, per-key order
    kept across them, duplicates share a key."""
    with webhook_server() as server:
        container = make(server.url, real_clock=True)
        expected: dict[str, list[str]] = {}
        for version in range(4):
            for n in range(6):
                key = f"ent-{n}"
                enqueue(container, "entitlement.plan_changed", key, str(version))
                expected.setdefault(key, []).append(f"entitlement.plan_changed:{key}:{version}")
        stop = threading.Event()
        replicas = [container, make(server.url, real_clock=True)]
        workers = [dispatcher(replica, concurrency=3) for replica in replicas]
        threads = [
            threading.Thread(target=w.run_forever, args=(stop,), kwargs={"idle_seconds": 0.02})
            for w in workers
        ]
        for thread in threads:
            thread.start()
        try:
            hooks_support.wait_for(lambda: len(set(server.keys())) == 24)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    with container.sessions() as session:
        statuses = set(session.scalars(sa.select(HookOutbox.status)))
    assert statuses == {"delivered"}
    for key, keys in expected.items():
        seen = [item.idempotency_key for item in server.received if item.ordering_key == key]
        first_seen = list(dict.fromkeys(seen))
        assert first_seen == keys, f"{key} delivered out of order: {seen}"


def test_a_python_callable_receives_the_typed_payload_and_the_idempotency_key(
    make: Factory,
) -> None:
    hooks_support.CALLS.clear()
    container = make("python:tests.integration.backend.hooks_support:record_call")
    item = enqueue(container, "entitlement.active", "ent-1", "pro")
    assert dispatcher(container).run_once().delivered == [item]
    [(hook, got, key)] = hooks_support.CALLS
    assert hook == "entitlement.active"
    assert isinstance(got, HookPayload)
    assert got.entitlement is not None
    assert got.entitlement.id == "ent-1"
    assert got.plan == "pro"
    assert key == "entitlement.active:ent-1:pro"


def test_a_raising_callable_is_a_failed_attempt_with_its_error_recorded(make: Factory) -> None:
    container = make("python:tests.integration.backend.hooks_support:failing_call")
    item = enqueue(container, "entitlement.active", "ent-1", "v1")
    assert dispatcher(container).run_once().failed == [item]
    assert "provisioning backend down" in (row(container, item).last_error or "")


def test_a_hook_no_receiver_wants_is_marked_skipped_and_can_be_retried(
    make: Factory,
) -> None:
    hooks_support.CALLS.clear()
    container = make("account.deleted=python:tests.integration.backend.hooks_support:record_call")
    item = enqueue(container, "entitlement.active", "ent-1", "v1")
    assert dispatcher(container).run_once().skipped == [item]
    assert row(container, item).status == "skipped"
    assert hooks_support.CALLS == []
    with container.unit_of_work() as uow:
        assert hooks_admin.retry(uow, item, now=container.now()).status == "pending"


def test_a_failing_after_delivery_step_keeps_the_item_pending(make: Factory) -> None:
    """Provision-before-approve: the item is done only when the approval after it is done."""

    def approve(_delivery: Any) -> None:
        raise RuntimeError("Procurement API unavailable")

    with webhook_server() as server:
        container = make(server.url)
        item = enqueue(container, "entitlement.active", "ent-1", "v1")
        assert dispatcher(container, after_delivery=approve).run_once().failed == [item]
        assert "Procurement API unavailable" in (row(container, item).last_error or "")
    assert len(server.received) == 1
