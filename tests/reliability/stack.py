"""The chaos run's stack: the Marketplace emulator as a server (Pub/Sub delivery, faults), N real
`marketplace-saas serve` replicas on one PostgreSQL database pulling from one subscription, and a
webhook receiver that records every hook delivered.

Pull, not push: the replicas share the subscription `projects/chaos-project/subscriptions/chaos`
on the real Pub/Sub emulator, so Pub/Sub spreads the messages over them and redelivers what a
killed replica leased but never acknowledged.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from marketplace_emulator.identity.models import X509_PATH
from marketplace_emulator.server import Emulator, RunningEmulator, free_port, run_in_thread
from marketplace_saas.adapters.usage_catalog import SANDBOX_CATALOG
from tests.integration.backend.hooks_support import WebhookServer, webhook_server
from tests.integration.backend.process_support import Process, run_cli

PROVIDER = "DEMO-chaos"
AUDIENCE = "chaos.example.test"
USAGE_TOKEN = "chaos-usage-token-0123456789abcdef"
HOOK_SECRET = "chaos-webhook-secret-0123456789abcdef0123"
# What Pub/Sub stops delivering is resumed from the inbox after this long, not 15 min: within
# the convergence wait (the report counts and names each one).
INBOX_RESUME_AFTER_SECONDS = 90


def replica_env(
    emulator: RunningEmulator,
    database_url: str,
    folder: Path,
    policy: str,
    hooks: str,
    sync_seconds: int = 20,
) -> dict[str, str]:
    """A production configuration (no sandbox) aimed at the emulator."""
    key = emulator.emulator.oauth.create_key(f"{emulator.url}/token", providers=[PROVIDER])
    key_path = folder / "key.json"
    key_path.write_text(json.dumps(key), encoding="utf-8")
    catalog = folder / "usage-catalog.json"
    catalog.write_text(json.dumps(SANDBOX_CATALOG), encoding="utf-8")
    keep = ("MARKETPLACE_", "APPROVAL_", "PLAN_CHANGE_", "DATABASE_URL", "HOOK_", "USAGE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    env.update(
        {
            "MARKETPLACE_SANDBOX": "0",
            "GOOGLE_CLOUD_PROJECT": "chaos-project",
            "MARKETPLACE_PROVIDER_ID": PROVIDER,
            "MARKETPLACE_SUBSCRIPTION": "chaos",
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_path),
            "PROCUREMENT_API_ENDPOINT": emulator.url,
            "SERVICE_CONTROL_API_ENDPOINT": emulator.url,
            "DATABASE_URL": database_url,
            "SESSION_SECRET": "chaos-session-secret-0123456789abcdef",
            "SIGNUP_AUDIENCE": AUDIENCE,
            "SIGNUP_CERTS_URL": f"{emulator.url}{X509_PATH}",
            "USAGE_CATALOG": str(catalog),
            "USAGE_API_TOKENS": USAGE_TOKEN,
            "APPROVAL_POLICY": policy,
            "PLAN_CHANGE_POLICY": "auto",
            "MAX_DELIVERY_ATTEMPTS": "20",
            "SYNC_INTERVAL_SECONDS": str(sync_seconds),
            "INBOX_RESUME_AFTER_SECONDS": str(INBOX_RESUME_AFTER_SECONDS),
            # A listener worker held on one message for 30 s says so, with its stack: replicas
            # live about 20 s between kills here, far less than the default 120 s.
            "LISTENER_STUCK_SECONDS": "30",
            "HOOK_RECEIVERS": hooks,
            "HOOK_WEBHOOK_SECRET": HOOK_SECRET,
            "HOOK_MAX_ATTEMPTS": "100",
            "HOOK_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class Replica:
    index: int
    port: int
    env: dict[str, str]
    folder: Path
    process: Process | None = None
    starts: int = 0
    exits: list[str] = field(default_factory=list)  # exited on their own (the end of stderr)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        name = f"replica{self.index}-{self.starts}"
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = Process(args, self.env, self.folder, name)

    def sigkill(self) -> None:
        if self.process is not None and self.process.popen.poll() is None:
            self.process.popen.send_signal(signal.SIGKILL)
            self.process.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.popen.poll() is None:
            self.process.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except Exception:
                self.sigkill()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float) -> None:
        """Wait until it answers; one that exits on its own is started again, as an orchestrator
        restarts a crashed pod (`serve` refuses to start when its preflight meets an API error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.popen.poll() is not None:
                self.exits.append(self.process.stderr[-500:])
                self.start()
            if self.ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"replica {self.index} did not start within {timeout} s")


@dataclass
class Stack:
    emulator: RunningEmulator
    replicas: list[Replica]
    receiver: WebhookServer
    database_url: str
    env: dict[str, str]
    kills: int = 0
    last_kill: float | None = None
    kill_log: list[str] = field(default_factory=list)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.process and r.process.popen.poll() is None]

    def kill_and_restart(self, rng: random.Random) -> None:
        """SIGKILL a random replica, start it again on the same port."""
        victim = rng.choice(self.replicas)
        victim.sigkill()
        self.kills += 1
        self.last_kill = time.monotonic()
        self.kill_log.append(f"replica {victim.index} killed at +{self.last_kill:.1f}")
        victim.start()
        for replica in self.replicas:  # the orchestrator restarts any that exited by itself
            if replica.process is not None and replica.process.popen.poll() is not None:
                replica.exits.append(replica.process.stderr[-500:])
                replica.start()


def resumed_events(folder: Path) -> list[str]:
    """The notifications the replicas' inbox job processed again because they were still not
    settled (`notification.resumed` in their logs), in the order logged, as "eventId (delivered
    N times)": once means Pub/Sub never delivered it again; more, that each replica it reached
    died before settling it."""
    found: list[str] = []
    for path in sorted(folder.glob("replica*.err")):
        for line in _ANSI.sub("", path.read_text(errors="replace")).splitlines():
            event_id = _EVENT_ID.search(line) if "notification.resumed" in line else None
            if event_id is not None:
                deliveries = _DELIVERIES.search(line)
                times = deliveries.group(1) if deliveries else "?"
                found.append(f"{event_id.group(1)} (delivered {times} times)")
    return found


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EVENT_ID = re.compile(r"\bevent_id=(\S+)")
_DELIVERIES = re.compile(r"\bdeliveries=(\S+)")


@contextmanager
def chaos_stack(
    database_url: str,
    pubsub_host: str,
    folder: Path,
    *,
    replicas: int,
    policy: str,
    sync_seconds: int = 20,
) -> Iterator[Stack]:
    """The emulator (publishing to the Pub/Sub emulator), the subscription, the receiver and
    `replicas` serve processes, all started and ready; everything stopped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        previous = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_host  # read by the emulator's notifier
        stack.callback(_restore_env, "PUBSUB_EMULATOR_HOST", previous)
        emulator = Emulator(providers=[PROVIDER])
        running = run_in_thread(emulator)
        stack.callback(emulator.close)
        stack.callback(running.stop)
        receiver = stack.enter_context(webhook_server(WebhookServer(secret=HOOK_SECRET)))
        env = replica_env(running, database_url, folder, policy, receiver.url, sync_seconds)
        env["PUBSUB_EMULATOR_HOST"] = pubsub_host
        for command in (["db", "upgrade"], ["pubsub", "create-subscription"]):
            done = run_cli(command, env, timeout=120)
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        nodes = [Replica(i, free_port(), env, folder) for i in range(replicas)]
        for node in nodes:
            stack.callback(node.stop)
            node.start()
        for node in nodes:
            node.wait_ready(timeout=300)  # a loaded machine starts them slowly
        yield Stack(running, nodes, receiver, database_url, env)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
