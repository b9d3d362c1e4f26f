"""SIGKILL of `marketplace-saas hooks run` mid-delivery: the hook is delivered after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import HookOutbox
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.service.hooks.outbox import enqueue_hook
from tests.integration.backend.conftest import backend_settings
from tests.integration.backend.hooks_support import (
    SECRET,
    WebhookServer,
    payload,
    wait_for,
    webhook_server,
)


@pytest.fixture
def container(migrated_database_url: str) -> Iterator[Container]:
    made = bootstrap(backend_settings(migrated_database_url, "http://127.0.0.1:9"))
    yield made
    made.close()


def dispatcher_process(database_url: str, receiver_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HOOK_", "MARKETPLACE_", "DATABASE_", "PROCUREMENT_"))
    }
    env.update(
        DATABASE_URL=database_url,
        MARKETPLACE_SANDBOX="1",
        MARKETPLACE_PROVIDER_ID="DEMO-sandbox",
        PROCUREMENT_API_ENDPOINT="http://127.0.0.1:9",
        HOOK_RECEIVERS=receiver_url,
        HOOK_WEBHOOK_SECRET=SECRET,
        HOOK_TIMEOUT_SECONDS="1",
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "marketplace_saas.entrypoints.cli", "hooks", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def enqueue(container: Container, entitlement_id: str) -> str:
    key = f"entitlement.active:{entitlement_id}:v1"
    with container.unit_of_work() as uow:
        enqueue_hook(
            uow,
            "entitlement.active",
            ordering_key=entitlement_id,
            idempotency_key=key,
            payload=payload(entitlement_id).to_dict(),
        )
    return key


def statuses(container: Container) -> dict[str, tuple[str, int]]:
    with container.sessions() as session:
        rows = session.execute(
            sa.select(HookOutbox.idempotency_key, HookOutbox.status, HookOutbox.attempts)
        ).all()
    return {key: (status, attempts) for key, status, attempts in rows}


def test_a_hook_in_flight_when_the_dispatcher_is_killed_is_delivered_after_restart(
    container: Container, migrated_database_url: str, tmp_path: Path
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def hold_the_first(_event: dict[str, Any]) -> tuple[int, float]:
        if not arrived.is_set():
            arrived.set()
            release.wait(30)
        return 200, 0.0

    log = tmp_path / "dispatcher.log"
    with webhook_server(WebhookServer(behaviour=hold_the_first)) as server:
        first = enqueue(container, "ent-1")  # committed before any dispatcher runs
        doomed = dispatcher_process(migrated_database_url, server.url, log)
        try:
            assert arrived.wait(60), log.read_text()
            doomed.send_signal(signal.SIGKILL)  # mid-delivery: the receiver has not answered
        finally:
            doomed.wait(30)
        release.set()
        assert statuses(container)[first] == ("pending", 1)
        second = enqueue(container, "ent-2")  # committed while no dispatcher runs

        survivor = dispatcher_process(migrated_database_url, server.url, log)
        try:
            wait_for(
                lambda: {s for s, _ in statuses(container).values()} == {"delivered"}, timeout=60
            )
        finally:
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(30) == 0, log.read_text()
    # At least once: the killed attempt may have reached the receiver; a repeat carries the key.
    keys = server.keys()
    assert set(keys) == {first, second}
    assert keys.count(first) == 2  # the killed attempt's request, then the redelivery
    assert keys.count(second) == 1
    assert server.rejected == []
    assert statuses(container)[first][1] == 2  # the second attempt delivered it
