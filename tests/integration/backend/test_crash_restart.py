"""`listen` killed with SIGKILL and started again: every entitlement converges within 60 s.

The whole path is real: `marketplace-emulator serve` as a server publishing to the real Pub/Sub
emulator, the subscription made by `marketplace-saas pubsub create-subscription`, and the
`marketplace-saas listen` console script in a process group of its own, killed as `kill -9 -PGID`
does, or by itself at a named crash point (`MARKETPLACE_CRASH_AT`, `adapters/crash_points.py`).
The bound is polled, not timed: the test fails only when 60 s pass without convergence.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from marketplace_emulator.server import free_port
from marketplace_saas.adapters.db.engine import create_engine
from marketplace_saas.adapters.db.models import Entitlement
from tests.integration.backend.process_support import Process, run_cli
from tests.integration.backend.pubsub_support import wait_for

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
CONVERGED_WITHIN = 60.0
ACTIVE = "ENTITLEMENT_ACTIVE"
OURS = ("MARKETPLACE_", "APPROVAL_", "PLAN_CHANGE_", "DATABASE_URL", "SYNC_", "LISTENER_")


@dataclass
class Marketplace:
    """The emulator server, the backend's environment, and our database."""

    api: httpx.Client
    provider: str
    env: dict[str, str]
    database_url: str
    folder: Path
    starts: int = 0
    listeners: list[Process] = field(default_factory=list)  # killed at teardown, if still alive

    def purchase(self) -> str:
        answer = self.api.post(
            f"/emulator/v1/providers/{self.provider}/purchases",
            json={"product": "example-product", "plan": "basic"},
        )
        answer.raise_for_status()
        return str(answer.json()["entitlement"]["name"]).rsplit("/", 1)[-1]

    def truth(self) -> dict[str, str]:
        answer = self.api.get(
            f"/v1/providers/{self.provider}/entitlements", params={"pageSize": 500}
        )
        answer.raise_for_status()
        return {
            str(e["name"]).rsplit("/", 1)[-1]: e["state"]
            for e in answer.json().get("entitlements", [])
        }

    def ours(self) -> dict[str, str]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(Entitlement.id, Entitlement.state)).all()
            return {str(row[0]): str(row[1]) for row in rows}
        finally:
            engine.dispose()

    def listen(self, **extra: str) -> Process:
        """`marketplace-saas listen` in its own process group, once it pulls."""
        self.starts += 1
        process = Process(
            ["listen"],
            {**self.env, **extra},
            self.folder,
            f"listen-{self.starts}",
            command=[str(BIN / "marketplace-saas")],
            group=True,
        )
        self.listeners.append(process)
        wait_for(process.said("listener.started"), timeout=30, what="the listener's start")
        return process

    def converged(self, ids: list[str]) -> bool:
        """Every purchase approved at the API, and our records equal to the API's."""
        truth = self.truth()
        return all(truth.get(i) == ACTIVE for i in ids) and self.ours() == truth


@pytest.fixture
def marketplace(
    migrated_database_url: str, pubsub_env: str, tmp_path: Path
) -> Iterator[Marketplace]:
    suffix = uuid.uuid4().hex[:8]
    provider = f"DEMO-crash-{suffix}"
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env = {
        **inherited,
        "PUBSUB_EMULATOR_HOST": pubsub_env,
        "MARKETPLACE_PROVIDER_ID": provider,
        "MARKETPLACE_SUBSCRIPTION": f"crash-{suffix}",
        "GOOGLE_CLOUD_PROJECT": "sandbox",
        "MARKETPLACE_SANDBOX": "1",
        "PROCUREMENT_API_ENDPOINT": f"http://127.0.0.1:{port}",
        "DATABASE_URL": migrated_database_url,
        "APPROVAL_POLICY": "auto",
        "PYTHONUNBUFFERED": "1",
    }
    emulator = Process(
        ["serve", "--port", str(port), "--provider", provider],
        env,
        tmp_path,
        "emulator",
        command=[str(BIN / "marketplace-emulator")],
        group=True,
    )
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_for(_answers(api), timeout=30, what="the emulator")
        created = run_cli(["pubsub", "create-subscription"], env)
        assert created.returncode == 0, created.stderr
        marketplace = Marketplace(api, provider, env, migrated_database_url, tmp_path)
        yield marketplace
        for listener in marketplace.listeners:  # a failed test may leave one running
            listener.kill_group()
    finally:
        api.close()
        emulator.kill_group()


def _answers(api: httpx.Client) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return api.get("/emulator/v1/notifications").status_code == 200
        except httpx.TransportError:
            return False

    return check


def _restart_and_converge(marketplace: Marketplace, ids: list[str]) -> None:
    listener = marketplace.listen()
    try:
        wait_for(
            lambda: marketplace.converged(ids),
            timeout=CONVERGED_WITHIN,
            what="every entitlement to converge after the restart",
            explain=lambda: {
                "api": sorted(marketplace.truth().items()),
                "ours": sorted(marketplace.ours().items()),
            },
        )
    finally:
        listener.kill_group()


def test_a_listener_killed_mid_stream_loses_no_purchase_after_a_restart(
    marketplace: Marketplace,
) -> None:
    """The reported failure: 15 purchases, kill -9 mid-stream, 10 more, restart: all approved."""
    listener = marketplace.listen()
    ids = []
    for number in range(15):
        ids.append(marketplace.purchase())
        if number == 9:
            listener.kill_group()
        time.sleep(0.05)
    ids += [marketplace.purchase() for _ in range(10)]

    _restart_and_converge(marketplace, ids)


@pytest.mark.parametrize(
    ("point", "hit"),
    [
        ("group_commit.before_commit", 1),  # the first transaction: an inbox row, not committed
        ("group_commit.before_commit", 6),  # later: effects (and inbox rows) in one transaction
        ("listener.before_ack", 2),  # effects committed, ack never sent
        ("procurement.after_call", 2),  # Google approved; we never heard the answer
    ],
    ids=["before-inbox-commit", "during-group-commit", "between-commit-and-ack", "during-api-call"],
)
def test_a_listener_killed_at_any_point_leaves_nothing_behind(
    marketplace: Marketplace, point: str, hit: int
) -> None:
    """Killed by itself at a named point mid-stream; after a restart everything converges."""
    listener = marketplace.listen(MARKETPLACE_CRASH_AT=f"{point}:{hit}")
    ids = [marketplace.purchase() for _ in range(6)]
    assert listener.wait(timeout=30) != 0, "the crash point was not reached"
    ids += [marketplace.purchase() for _ in range(4)]

    _restart_and_converge(marketplace, ids)
