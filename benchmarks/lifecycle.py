"""Lifecycle benchmark: notifications/s end to end, and the cost per notification at scale.

    python -m benchmarks lifecycle [--changes 1000] [--scales 1000,100000] [--listeners 1]

End to end means: the Marketplace emulator (its own process) publishes to a real Pub/Sub
emulator; the backend's listener (pull, `LISTENER_MAX_MESSAGES`, in this process)
hands each message to `handle_message`, which reads the entitlement from the emulator's
Procurement API, calls `approvePlanChange` when asked, and commits to SQLite.

For each scale, the database holds that many customers (an account and an active entitlement
each), seeded directly, not through notifications; `--changes` of them, chosen at random, also
exist in the emulator, and each asks for a plan change. That queues
`--changes` ENTITLEMENT_PLAN_CHANGE_REQUESTED messages on the subscription; the listener then
starts, approves each change (PLAN_CHANGE_POLICY=auto), and the emulator answers each approval
with ENTITLEMENT_PLAN_CHANGED, which the listener processes too: 2 x `--changes` notifications.
The clock runs from the listener's start until the last of them is committed.

In the same run, the bare Pub/Sub emulator's ack rate is measured: the same number of messages,
a subscriber whose callback only acks, the same flow control.

Each run also reports the CPU time per notification of every process it involves, from the
clock's start to the last commit (`cpu_ms_per_notification_by_process`, read from /proc by
`benchmarks/proc_cpu.py`): this listener, the other listener processes, the Marketplace
emulator, the Pub/Sub emulator (its JVM) and, on PostgreSQL, the server processes of the run's
database (sampled every 50 ms, so those that end during the run count too).

The emulator holds only the entitlements the run touches: the scale being measured is the
backend's (its database, its queries, its writes), not the emulator's.

Figures go to `benchmarks/results/lifecycle.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks import RESULTS_DIR, machine, proc_cpu
from benchmarks.emulator import pubsub_emulator
from benchmarks.lifecycle_seed import PROVIDER, seed_database, seeded_emulator

TARGET_PER_SECOND = 300
TARGET_SCALE_RATIO = 1.5


# -- the measured run -----------------------------------------------------------------------------


def create_subscription(topic: str) -> str:
    from google.cloud import pubsub_v1

    subscription = f"projects/bench/subscriptions/lifecycle-{uuid.uuid4().hex[:8]}"
    with pubsub_v1.SubscriberClient() as subscriber:
        subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60}
        )
    return subscription


class ProcessedCounter:
    """Counts processed inbox rows over one connection kept open (polling must not load the
    process it measures: a new engine per poll cost it a few ms each time)."""

    def __init__(self, database_url: str) -> None:
        import sqlalchemy as sa

        from marketplace_saas.adapters.db.engine import create_engine
        from marketplace_saas.adapters.db.models import InboxMessage

        self._engine = create_engine(database_url)
        self._conn = self._engine.connect()
        self._query = (
            sa.select(sa.func.count())
            .select_from(InboxMessage)
            .where(InboxMessage.status == "processed")
        )

    def __call__(self) -> int:
        count = int(self._conn.execute(self._query).scalar_one())
        self._conn.rollback()  # end the read transaction: the next poll sees new commits
        return count

    def sessions(self) -> int:
        """Sessions ever opened on this database (PostgreSQL's statistics; 0 on SQLite)."""
        import sqlalchemy as sa

        if self._engine.dialect.name != "postgresql":
            return 0
        self._conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        opened = self._conn.execute(
            sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        ).scalar_one()
        self._conn.rollback()
        return int(opened)

    def backend_watch(self) -> proc_cpu.BackendWatch | None:
        """A watch on the PostgreSQL server processes of this database, but for this counter's
        (None on SQLite)."""
        import sqlalchemy as sa

        if self._engine.dialect.name != "postgresql":
            return None
        row = self._conn.execute(sa.text("SELECT pg_backend_pid(), current_database()")).one()
        self._conn.rollback()
        own, database = int(row[0]), str(row[1])
        return proc_cpu.BackendWatch(proc_cpu.parent(own), database, exclude=[own])

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()


def _settings(database_url: str, url: str) -> Any:
    from marketplace_saas.config import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=database_url,
        PROCUREMENT_API_ENDPOINT=url,
        MARKETPLACE_PROVIDER_ID=PROVIDER,
        MARKETPLACE_SANDBOX=True,
        PLAN_CHANGE_POLICY="auto",
        APPROVAL_POLICY="auto",
    )


def listen_child(database_url: str, url: str, subscription: str) -> None:
    """Another listener process on the subscription (`--listeners`); stops on SIGTERM."""
    import signal

    from marketplace_saas.adapters.logging import configure_logging
    from marketplace_saas.entrypoints.cli._common import open_container
    from marketplace_saas.entrypoints.listener import Listener, processing_callback

    configure_logging(level="WARNING")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    settings = _settings(database_url, url)
    with open_container(settings) as container:
        listener = Listener(settings, processing_callback(container), subscription=subscription)
        print("ready", flush=True)
        sys.stdin.readline()  # "go": the clock starts with every listener at once
        listener.start()
        stopping.wait()
        listener.stop()


def _start_children(n: int, *args: str) -> list[subprocess.Popen[str]]:
    code = "import sys; from benchmarks.lifecycle import listen_child; listen_child(*sys.argv[1:])"
    command = [sys.executable, "-c", code, *args]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    for child in children:
        assert child.stdout is not None
        child.stdout.readline()  # "ready": started, waiting for "go" to open its pull loop
    return children


def _go(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def _stop_children(children: list[subprocess.Popen[str]]) -> float:
    """Stop the extra listeners; the CPU seconds they used (start-up and idle wait included)."""
    import resource

    def used() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = used()
    for child in children:
        child.terminate()
        child.wait(timeout=60)
    return used() - before


def _process_groups() -> dict[str, list[int]]:
    """This run's processes by role: this listener, the others, the Marketplace emulator, the
    Pub/Sub emulator (its wrapper and JVM). The PostgreSQL backends: `BackendWatch`."""

    groups: dict[str, list[int]] = {
        "listener_main": [os.getpid()],
        "listener_others": [],
        "marketplace_emulator": [],
        "pubsub_emulator": [],
    }
    for pid in proc_cpu.descendants(os.getpid()):
        command = proc_cpu.command_line(pid)
        if "listen_child" in command:
            groups["listener_others"].append(pid)
        elif "serve_seeded_emulator" in command:
            groups["marketplace_emulator"].append(pid)
        elif command:
            groups["pubsub_emulator"].append(pid)
    return groups


def end_to_end(
    customers: int,
    changes: int,
    folder: Path,
    pubsub_host: str,
    listeners: int = 1,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Plan changes of `changes` entitlements among `customers`, from request to commit;
    `listeners` > 1: that many listener processes on the subscription (this one and others).
    `database_url`: an empty database (PostgreSQL: `benchmarks.replicas`); default a new SQLite
    file in `folder`."""
    from marketplace_saas.entrypoints.cli._common import open_container
    from marketplace_saas.entrypoints.listener import Listener, processing_callback

    database_url = database_url or f"sqlite:///{folder / f'lifecycle-{customers}.db'}"
    with seeded_emulator(changes, folder / str(customers), pubsub_host) as (url, seed_file):
        started = time.perf_counter()
        seed_database(database_url, seed_file, customers)
        seeding = time.perf_counter() - started
        subscription = create_subscription(f"projects/cloudcommerceproc-prod/topics/{PROVIDER}")
        known = json.loads(seed_file.read_text())["entitlements"]
        plans = {e["name"].rsplit("/", 1)[1]: e["plan"] for e in known}
        chosen = sorted(plans)
        random.Random(customers).shuffle(chosen)
        with httpx.Client(base_url=url, timeout=30) as client:
            for eid in chosen:
                plan = "pro" if plans[eid] == "basic" else "basic"
                response = client.post(
                    f"/emulator/v1/providers/{PROVIDER}/entitlements/{eid}:changePlan",
                    json={"plan": plan},
                )
                response.raise_for_status()
        time.sleep(2.0)  # let the emulator's notifier hand every request to Pub/Sub
        settings = _settings(database_url, url)
        expected = 2 * len(chosen)
        children = _start_children(listeners - 1, database_url, url, subscription)
        with open_container(settings) as container:
            listener = Listener(settings, processing_callback(container), subscription=subscription)
            count = ProcessedCounter(database_url)
            cpu_groups = proc_cpu.snapshot(_process_groups())
            backends = count.backend_watch()
            sessions_before = count.sessions()
            cpu_before = time.process_time()
            times_before = os.times()
            started = time.perf_counter()
            _go(children)
            listener.start()
            deadline = started + 1800
            done = 0
            try:
                while time.perf_counter() < deadline:
                    done = count()
                    if backends is not None:
                        backends.sample()
                    if done >= expected:
                        break
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
                cpu_by_process = proc_cpu.cpu_since(cpu_groups, _process_groups())
                watch_cost = 0.0
                if backends is not None:
                    cpu_by_process["postgres_backends"] = backends.used()
                    # the samples ran in this process: not the listener's CPU
                    watch_cost = backends.cost
                    cpu_by_process["listener_main"] -= watch_cost
                    cpu_by_process["postgres_backends_seen"] = backends.seen
                sessions = count.sessions() - sessions_before
            finally:
                count.close()
            cpu = time.process_time() - cpu_before - watch_cost
            times = os.times()
            user = times.user - times_before.user
            system = times.system - times_before.system
            listener.stop()
            batches = container.writes.batches
            retried_alone = container.writes.retried_alone
        # The others' CPU includes their start-up and idle wait before the clock: an upper bound.
        cpu += _stop_children(children)
    return {
        "database": database_url.split(":", 1)[0].split("+", 1)[0],
        "listeners": listeners,
        "customers": customers,
        "plan_changes": len(chosen),
        "notifications": expected,
        "processed": done,
        "seconds": round(elapsed, 2),
        "notifications_per_second": round(done / elapsed, 1),
        "ms_per_notification": round(elapsed / max(done, 1) * 1000, 3),
        "listener_cpu_ms_per_notification": round(cpu / max(done, 1) * 1000, 3),
        # this process alone: its user (Python, SQLite, gRPC) and kernel (syscalls, switches) time
        "listener_user_ms_per_notification": round(user / max(done, 1) * 1000, 3),
        "listener_system_ms_per_notification": round(system / max(done, 1) * 1000, 3),
        # every process of the run, from the clock's start to the last commit (/proc)
        "cpu_ms_per_notification_by_process": {
            name: round(seconds / max(done, 1) * 1000, 3)
            for name, seconds in cpu_by_process.items()
            if name != "postgres_backends_seen"
        },
        "postgres_backends_seen": cpu_by_process.get("postgres_backends_seen", 0),
        # PostgreSQL connections opened during the run (the backends of those closed again are
        # not in `postgres_backends`)
        "postgres_sessions_opened": sessions,
        # this process's write transactions (inbox rows and effects, grouped on SQLite)
        "write_transactions": batches,
        # works of a shared transaction run again alone (a busy lock on PostgreSQL, or a failure)
        "writes_retried_alone": retried_alone,
        "seeding_seconds": round(seeding, 1),
    }


def bare_ack_rate(count: int, max_messages: int) -> dict[str, Any]:
    """The Pub/Sub emulator alone: publish `count` messages, then a subscriber that only acks."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    topic = f"projects/bench/topics/bare-{uuid.uuid4().hex[:8]}"
    publisher.create_topic(request={"name": topic})
    subscription = create_subscription(topic)
    body = json.dumps({"eventId": "x" * 36, "eventType": "ENTITLEMENT_PLAN_CHANGED"}).encode()
    for future in [publisher.publish(topic, body) for _ in range(count)]:
        future.result(timeout=600)
    acked = 0
    lock = threading.Lock()
    finished = threading.Event()

    def callback(message: Any) -> None:
        nonlocal acked
        message.ack()
        with lock:
            acked += 1
            if acked >= count:
                finished.set()

    subscriber = pubsub_v1.SubscriberClient()
    flow = pubsub_v1.types.FlowControl(max_messages=max_messages)
    started = time.perf_counter()
    future = subscriber.subscribe(subscription, callback, flow_control=flow)
    finished.wait(timeout=600)
    elapsed = time.perf_counter() - started
    future.cancel()
    future.result(timeout=60)  # the last acks are sent before the channel closes
    subscriber.close()
    return {
        "messages": count,
        "seconds": round(elapsed, 2),
        "acks_per_second": round(acked / elapsed, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks lifecycle")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--scales", default="1000,100000")
    parser.add_argument("--listeners", type=int, default=1, help="listener processes")
    args = parser.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]

    from marketplace_saas.adapters.logging import configure_logging
    from marketplace_saas.config import Settings

    configure_logging(level="WARNING")
    max_messages = Settings(_env_file=None).listener_max_messages  # type: ignore[call-arg]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        folder = Path(tmp)
        with pubsub_emulator(folder / "pubsub-emulator.log") as host:
            if host is None:
                print("skipped: the Cloud Pub/Sub emulator (or Java) is not installed")
                return 0
            os.environ["PUBSUB_EMULATOR_HOST"] = host
            bare_ack_rate(2000, max_messages)  # warm the JVM; not measured
            runs = []
            bare = []
            for customers in scales:
                bare.append(bare_ack_rate(2 * args.changes, max_messages))
                runs.append(end_to_end(customers, args.changes, folder, host, args.listeners))
                print(json.dumps(runs[-1]), flush=True)
    small, large = runs[0], runs[-1]
    ratio = large["ms_per_notification"] / small["ms_per_notification"]
    result = {
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "listener_max_messages": max_messages,
        "database": "SQLite (file, WAL)",
        "target_notifications_per_second": TARGET_PER_SECOND,
        "target_cost_ratio": TARGET_SCALE_RATIO,
        "runs": runs,
        "bare_pubsub": bare,
        "cost_ratio_largest_to_smallest": round(ratio, 2),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "lifecycle.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
