"""The listener SIGKILLed at random points of a long stream, and restarted until the stream is done.

A driver plays seeded customer histories on the Marketplace emulator (purchases, plan changes,
cancellations, reverted cancellations); a pump publishes every notification the emulator records
to the real Pub/Sub emulator; `marketplace-saas listen` runs as a process that the test kills with
SIGKILL after a random, seeded time, then starts again. At the end: every eventId is in the inbox
and settled (nothing lost), no effect was recorded twice, and the database equals the API's truth.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from marketplace_emulator.errors import ApiError
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Entitlement,
    HookOutbox,
    InboxMessage,
    PlanHistory,
)
from marketplace_saas.bootstrap import Container
from marketplace_saas.domain.entitlements import IN_SERVICE
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.process_support import Process, backend_env
from tests.integration.backend.pubsub_support import Channel, channel_fixture, wait_for

pytestmark = pytest.mark.integration
__all__ = ["channel_fixture"]

SEED = 20261128
STEPS = 90
MAX_STEPS = 4 * STEPS  # how long the stream may go on while the listeners start slowly
DEADLINE_SECONDS = 120.0


class Pump(threading.Thread):
    """Publishes each notification the emulator records, in order, exactly once."""

    def __init__(self, emulator: Emulator, channel: Channel) -> None:
        super().__init__(name="pump", daemon=True)
        self.emulator = emulator
        self.channel = channel
        self.published: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pending = self.emulator.notifications(PROVIDER)[len(self.published) :]
            for payload in pending:
                self.channel.publish(payload)
                self.published.append(str(payload["eventId"]))
            self.stop.wait(0.02)


class Driver(threading.Thread):
    """Seeded customer actions at a steady pace, never waiting for the listener.

    Each step picks an action the emulator's current state allows: a purchase (sometimes on an
    existing account), a plan change of an active entitlement, a cancellation at term end, its
    revert, or an immediate cancellation. An action the state no longer allows when it runs
    (the listener moved the entitlement on meanwhile) is skipped.
    """

    def __init__(self, emulator: Emulator, rng: random.Random) -> None:
        super().__init__(name="driver", daemon=True)
        self.emulator = emulator
        self.rng = rng
        self.done = threading.Event()
        # Set by the test once enough listeners were killed mid-stream: on a slow machine the
        # listeners start slowly, and the stream goes on (up to MAX_STEPS) until then.
        self.enough_kills = threading.Event()
        self.error: BaseException | None = None
        self.actions: Counter[str] = Counter()

    def run(self) -> None:
        try:
            for step in range(MAX_STEPS):
                if step >= STEPS and self.enough_kills.is_set():
                    break
                self.step()
                time.sleep(self.rng.uniform(0.02, 0.15))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()

    def step(self) -> None:
        procurement = self.emulator.procurement
        entitlements = sorted(procurement.entitlements(PROVIDER), key=lambda e: e.id)
        by_state: dict[str, list[str]] = {}
        for entitlement in entitlements:
            by_state.setdefault(entitlement.state, []).append(entitlement.id)
        active = by_state.get("ENTITLEMENT_ACTIVE", [])
        pending = by_state.get("ENTITLEMENT_PENDING_CANCELLATION", [])
        choices = ["purchase"] * 3
        choices += ["change_plan", "cancel_at_term_end", "cancel_now"] if active else []
        choices += ["revert"] if pending else []
        action = self.rng.choice(choices)
        try:
            if action == "purchase":
                accounts = sorted({e.account_id for e in entitlements})
                reuse = self.rng.choice(accounts) if accounts and self.rng.random() < 0.3 else None
                plan = self.rng.choice(["basic", "pro"])
                procurement.purchase(PROVIDER, "example-product", plan, account_id=reuse)
            elif action == "change_plan":
                eid = self.rng.choice(active)
                plan = procurement.get_entitlement(PROVIDER, eid).plan
                procurement.change_plan(PROVIDER, eid, "pro" if plan == "basic" else "basic")
            elif action == "cancel_at_term_end":
                procurement.cancel(PROVIDER, self.rng.choice(active), at_term_end=True)
            elif action == "cancel_now":
                procurement.cancel(PROVIDER, self.rng.choice(active), at_term_end=False)
            else:
                procurement.revert_cancellation(PROVIDER, self.rng.choice(pending))
        except ApiError:  # FailedPrecondition: the state moved on meanwhile
            action = "skipped"
        self.actions[action] += 1


def unsettled(container: Container, published: list[str]) -> dict[str, str | None]:
    """The published events not (yet) processed or ignored, with their inbox status."""
    with container.sessions() as session:
        rows = dict(session.execute(sa.select(InboxMessage.event_id, InboxMessage.status)).all())
    return {e: rows.get(e) for e in published if rows.get(e) not in {"processed", "ignored"}}


def test_sigkilled_listener_loses_nothing_and_applies_nothing_twice(
    emulator: Emulator,
    make_container: ContainerFactory,
    channel: Channel,
    pubsub_env: str,
    tmp_path: Path,
) -> None:
    container = make_container(approval_policy="auto", max_delivery_attempts=100)
    rng = random.Random(SEED)
    env = backend_env(
        container.settings,
        PUBSUB_EMULATOR_HOST=pubsub_env,
        MARKETPLACE_SUBSCRIPTION=channel.subscription.rsplit("/", 1)[1],
        LISTENER_MAX_MESSAGES="8",
        LOG_LEVEL="INFO",
    )
    pump = Pump(emulator, channel)
    driver = Driver(emulator, rng)
    pump.start()
    driver.start()
    kills = 0
    processes: list[Process] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        current: Process | None = None
        while not driver.done.is_set() and time.monotonic() < deadline:
            # The next listener starts before the current one dies, so messages keep flowing
            # (two processes on one subscription, as in a rolling restart).
            following = Process(["listen"], env, tmp_path, f"listen-{len(processes)}")
            processes.append(following)
            wait_for(following.said("listening on"), timeout=30, what="start-up")
            if current is not None:
                driver.done.wait(rng.uniform(0.2, 1.5))
                current.popen.send_signal(signal.SIGKILL)
                current.wait(timeout=30)
                kills += 1
                if kills >= 2:  # the last listener is killed after the stream: 3 in all
                    driver.enough_kills.set()
            current = following
        assert driver.error is None, driver.error
        assert driver.done.is_set(), "the stream did not finish in time"
        assert current is not None
        # The stream is done: the last listener is killed too, and a fresh one drains what is
        # left. Messages the killed processes held come back when their leases expire (10 to
        # 90 s on the emulator, which may also hand them to a dead stream again); instead of
        # waiting, the test expires every lease now and then, as Pub/Sub eventually would.
        current.popen.send_signal(signal.SIGKILL)
        current.wait(timeout=30)
        kills += 1
        current = Process(["listen"], env, tmp_path, "listen-final")
        processes.append(current)
        wait_for(current.said("listening on"), timeout=30, what="start-up")
        drained = False
        while not drained and time.monotonic() < deadline:
            channel.expire_leases()
            drained = bool(
                wait_for(
                    lambda: (
                        len(pump.published) == len(emulator.notifications(PROVIDER))
                        and not unsettled(container, pump.published)
                    ),
                    timeout=3,
                    fail=False,
                )
            )
        assert drained, (kills, unsettled(container, pump.published))
        current.signal(signal.SIGTERM)
        assert current.wait(timeout=60) == 0, current.stderr
    finally:
        pump.stop.set()
        pump.join(timeout=10)
        for process in processes:
            process.kill()
    assert kills >= 3, f"only {kills} kills: the stream was too short to test anything"
    assert driver.actions["purchase"] >= 10, driver.actions
    assert_nothing_lost(container, pump.published)
    assert_nothing_applied_twice(container)
    assert_database_equals_the_api(container, emulator)


def assert_nothing_lost(container: Container, published: list[str]) -> None:
    assert len(published) == len(set(published))
    with container.sessions() as session:
        rows = dict(session.execute(sa.select(InboxMessage.event_id, InboxMessage.status)).all())
    assert set(published) <= set(rows)
    assert {rows[e] for e in published} <= {"processed", "ignored"}


def assert_nothing_applied_twice(container: Container) -> None:
    with container.sessions() as session:
        changes = session.execute(
            sa.select(
                AuditLog.event_id, AuditLog.action, AuditLog.entitlement_id, AuditLog.account_id
            ).where(AuditLog.kind == "change", AuditLog.event_id.is_not(None))
        ).all()
        history = session.execute(
            sa.select(
                PlanHistory.entitlement_id, PlanHistory.previous_plan, PlanHistory.plan
            ).order_by(PlanHistory.entitlement_id, PlanHistory.id)
        ).all()
        hooks = session.execute(sa.select(HookOutbox.hook, HookOutbox.ordering_key)).all()
    repeated = [key for key, count in Counter(changes).items() if count > 1]
    assert repeated == [], "an event's change was recorded twice"
    # Each entitlement's plan history is one chain: a change applied twice would repeat a link.
    chains: dict[str, list[tuple[str | None, str]]] = {}
    for entitlement_id, previous, plan in history:
        chains.setdefault(entitlement_id, []).append((previous, plan))
    for entitlement_id, chain in chains.items():
        for (_, before), (previous, _) in itertools.pairwise(chain):
            assert previous == before, f"plan history of {entitlement_id} repeats: {chain}"
    activations = Counter(key for hook, key in hooks if hook == "entitlement.active")
    assert all(count == 1 for count in activations.values()), activations


def assert_database_equals_the_api(container: Container, emulator: Emulator) -> None:
    truth = {e.id: e for e in emulator.procurement.entitlements(PROVIDER)}
    with container.sessions() as session:
        ours = {row.id: row for row in session.scalars(sa.select(Entitlement))}
        accounts = {row.id: row for row in session.scalars(sa.select(Account))}
    assert set(ours) == set(truth)
    for eid, api in truth.items():
        row = ours[eid]
        assert (row.state, row.plan, row.new_pending_plan or "") == (
            api.state,
            api.plan,
            api.new_pending_plan or "",
        ), eid
        assert row.service_enabled == (api.state in IN_SERVICE), eid
    for account in emulator.procurement.list_accounts(PROVIDER, page_size=200)[0]:
        assert accounts[account.id].signup_approval == account.signup_state
