"""Emulator benchmarks: `entitlements.get` requests/s under wrk, and notifications/s to Pub/Sub.

    python -m benchmarks emulator [--duration 10] [--connections 32] [--notifications 20000]

1. The emulator is served by `marketplace-emulator serve` in its own process. Entitlements are
   seeded through the customer-action endpoints, then `wrk` (keep-alive, one thread, N
   connections) cycles `GET /v1/providers/{p}/entitlements/{id}` over them.
2. Notifications go through the `Notifier` to a real Pub/Sub emulator (one subscription on the
   topic, as a provider would have), timed from the first `publish()` until `flush()` returns;
   the same payloads published with Google's `PublisherClient` alone give the baseline ratio.

3. Scale (`--scale`, in-process, no HTTP): `ProcurementBackend` seeded with 1,000 and 100,000
   entitlements through the model (purchase, approve the account, approve the entitlement: three
   writes each) and through the silent bulk `seed()`; then `entitlements.get` and `list` latency
   (first page, `account=` filter, `state=active`), and one clock advance renewing every term.

Figures are printed and merged into `benchmarks/results/emulator.json` (sections not run are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks import RESULTS_DIR, machine

TARGET_GET_PER_SECOND = 2000
PROVIDER = "BENCH-provider"
PRODUCT = "example-product"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def stop(
    process: subprocess.Popen[Any],
    sig: signal.Signals = signal.SIGTERM,
    *,
    timeout: float = 10,
    kill_timeout: float = 10,
) -> None:
    """Signal the process's group with `sig`; SIGKILL it if it has not ended within `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=kill_timeout)


@contextmanager
def emulator_server(log_path: Path, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """`marketplace-emulator serve` on a free port, without Pub/Sub; yields its base URL."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "marketplace-emulator"), "serve"]
    env = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        if not wait_for_port(port, timeout=30):
            raise RuntimeError(f"the emulator did not start; see {log_path}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def seed_entitlements(base_url: str, count: int) -> list[str]:
    """Buy `count` entitlements through the control API; returns their resource names."""
    names: list[str] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for n in range(count):
            response = client.post(
                f"/emulator/v1/providers/{PROVIDER}/purchases",
                json={"product": PRODUCT, "plan": "basic" if n % 2 else "pro"},
            )
            response.raise_for_status()
            names.append(response.json()["entitlement"]["name"])
        # One warm request through the official path before measuring.
        client.get(f"/v1/{names[0]}").raise_for_status()
    return names


WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1], {["Authorization"] = "Bearer bench"})
end
"""


def parse_wrk(output: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:(.*)", output)
    latency: dict[str, str] = {}
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", output, re.MULTILINE)
        if found:
            latency[f"p{pct}"] = found.group(1)
    return {
        "requests_per_second": float(rate.group(1)) if rate else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "latency": latency,
    }


def run_wrk(
    base_url: str, names: list[str], duration: int, connections: int, threads: int
) -> dict[str, Any]:
    paths = ", ".join(json.dumps(f"/v1/{name}") for name in names)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % paths)
    try:
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            script.name,
            base_url,
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    return parse_wrk(output)


def bench_entitlements_get(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    with emulator_server(log_dir / "benchmark-emulator.log") as base_url:
        names = seed_entitlements(base_url, args.entitlements)
        run_wrk(base_url, names, duration=2, connections=args.connections, threads=1)  # warm-up
        result = run_wrk(
            base_url, names, args.duration, connections=args.connections, threads=args.threads
        )
    rate = result["requests_per_second"]
    return {
        "method": "entitlements.get",
        "server": "marketplace-emulator serve (uvicorn, one process)",
        "client": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, keep-alive",
        "entitlements": len(names),
        **result,
        "target_per_second": TARGET_GET_PER_SECOND,
        "ratio_to_target": round(rate / TARGET_GET_PER_SECOND, 2),
    }


@contextmanager
def pubsub_emulator(log_path: Path) -> Iterator[str | None]:
    """The real Pub/Sub emulator on a free port ('host:port'), or None when not installed."""
    from tests.support.infra import find_pubsub_emulator

    binary = find_pubsub_emulator()
    if binary is None or shutil.which("java") is None:
        yield None
        return
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if not wait_for_port(port, timeout=60):
            raise RuntimeError(f"the Pub/Sub emulator did not start; see {log_path}")
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


def notification(n: int, provider: str) -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": "ENTITLEMENT_ACTIVE",
        "providerId": provider,
        "entitlement": {"id": f"{n:08d}-bench", "updateTime": "2026-01-01T00:00:00.123456Z"},
    }


def notifier_round(count: int) -> dict[str, Any]:
    """One run through the Notifier: from the first publish() until flush() returns."""
    from marketplace_emulator.faults import FaultInjector
    from marketplace_emulator.notifier import Notifier

    provider = f"BENCH-{uuid.uuid4().hex[:8]}"
    notifier = Notifier(FaultInjector(), providers=[provider])
    subscribe(f"projects/cloudcommerceproc-prod/topics/{provider}")
    payloads = [notification(n, provider) for n in range(count)]
    started = time.perf_counter()
    for payload in payloads:
        notifier.publish(provider, payload)
    queued = time.perf_counter()
    drained = notifier.flush(timeout=600)
    finished = time.perf_counter()
    stats = notifier.stats()
    notifier.close()
    return {
        "rate": count / (finished - started),
        "publish_us": (queued - started) / count * 1e6,
        "drained": drained,
        "delivered": stats.delivered,
        "failed": stats.failed,
    }


def raw_round(count: int) -> float:
    """Google's publisher alone with the same kind of payloads, waiting for every future."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    topic = f"projects/bench/topics/raw-{uuid.uuid4().hex[:8]}"
    publisher.create_topic(name=topic)
    subscribe(topic)
    encoded = [
        json.dumps(notification(n, "raw"), separators=(",", ":")).encode() for n in range(count)
    ]
    started = time.perf_counter()
    futures: list[Future[str]] = [publisher.publish(topic, data) for data in encoded]
    for future in futures:
        future.result(timeout=600)
    elapsed = time.perf_counter() - started
    publisher.stop()
    return count / elapsed


def subscribe(topic: str) -> None:
    """One pull subscription on the topic, as the provider has: the emulator stores each message."""
    from google.cloud import pubsub_v1

    with pubsub_v1.SubscriberClient() as subscriber:
        name = subscriber.subscription_path("bench", f"sub-{uuid.uuid4().hex[:8]}")
        subscriber.create_subscription(name=name, topic=topic)


def bench_notifications(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    with pubsub_emulator(log_dir / "benchmark-pubsub-emulator.log") as host:
        if host is None:
            return {"skipped": "the Cloud Pub/Sub emulator (or Java) is not installed"}
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        count = args.notifications
        raw_round(min(count, 10_000))  # warm the Pub/Sub emulator's JVM; not measured
        notifier_runs: list[dict[str, Any]] = []
        raw_rates: list[float] = []
        for _ in range(args.rounds):  # alternate, so drift in the JVM affects both alike
            notifier_runs.append(notifier_round(count))
            raw_rates.append(raw_round(count))

    rate = statistics.median(run["rate"] for run in notifier_runs)
    raw_rate = statistics.median(raw_rates)
    return {
        "notifications_per_round": count,
        "rounds": args.rounds,
        "all_drained": all(run["drained"] for run in notifier_runs),
        "delivered": sum(run["delivered"] for run in notifier_runs),
        "failed": sum(run["failed"] for run in notifier_runs),
        "notifications_per_second": round(rate, 1),
        "notifications_per_second_rounds": [round(run["rate"], 1) for run in notifier_runs],
        "publish_call_microseconds": round(
            statistics.median(run["publish_us"] for run in notifier_runs), 1
        ),
        "raw_publisher_per_second": round(raw_rate, 1),
        "raw_publisher_per_second_rounds": [round(r, 1) for r in raw_rates],
        "ratio_to_raw_publisher": round(rate / raw_rate, 2),
    }


def _latency(call: Any, samples: int) -> dict[str, float]:
    timings = []
    for i in range(samples):
        started = time.perf_counter()
        call(i)
        timings.append((time.perf_counter() - started) * 1e6)
    timings.sort()
    return {
        "p50_us": round(timings[len(timings) // 2], 1),
        "p99_us": round(timings[int(len(timings) * 0.99)], 1),
    }


def scale_round(count: int) -> dict[str, Any]:
    from marketplace_emulator.catalog import Catalog
    from marketplace_emulator.clock import Clock
    from marketplace_emulator.events import RecordingSink
    from marketplace_emulator.procurement.models import ProcurementBackend

    def backend() -> tuple[ProcurementBackend, Clock]:
        clock = Clock()
        return ProcurementBackend(clock, Catalog(), RecordingSink()), clock

    bulk, _ = backend()
    started = time.perf_counter()
    bulk.seed(PROVIDER, count)
    seeded = time.perf_counter() - started
    del bulk
    model, clock = backend()
    started = time.perf_counter()
    ids = []
    for _ in range(count):
        account, entitlement = model.purchase(PROVIDER, PRODUCT, "basic")
        model.approve_account(PROVIDER, account.id)
        model.approve_entitlement(PROVIDER, entitlement.id)
        ids.append((account.id, entitlement.id))
    through_model = time.perf_counter() - started
    samples = 2000
    picks = [ids[(i * 7919) % count] for i in range(samples)]
    result = {
        "entitlements": count,
        "seed_through_model_seconds": round(through_model, 2),
        "seed_through_model_per_second": round(count / through_model),
        "bulk_seed_seconds": round(seeded, 2),
        "get": _latency(lambda i: model.get_entitlement(PROVIDER, picks[i][1]), samples),
        "list_first_page": _latency(lambda i: model.list_entitlements(PROVIDER), 200),
        "list_account_filter": _latency(
            lambda i: model.list_entitlements(PROVIDER, f"account={picks[i][0]}"), samples
        ),
        "list_state_active_first_page": _latency(
            lambda i: model.list_entitlements(PROVIDER, "state=active"), 200
        ),
    }
    clock.advance(31 * 86_400)
    started = time.perf_counter()
    model.process_due()
    result["advance_renewing_all_seconds"] = round(time.perf_counter() - started, 2)
    return result


def bench_scale(counts: list[int]) -> dict[str, Any]:
    return {
        "what": "ProcurementBackend in-process (no HTTP); latencies per call in microseconds",
        "machine": machine(),
        "rounds": [scale_round(count) for count in counts],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.emulator")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--entitlements", type=int, default=200, help="entitlements to seed")
    parser.add_argument("--notifications", type=int, default=20_000, help="per round")
    parser.add_argument("--rounds", type=int, default=3, help="notification rounds (median)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-pubsub", action="store_true")
    parser.add_argument("--scale", action="store_true", help="also the in-process scale rounds")
    parser.add_argument("--scale-counts", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "emulator.json")
    args = parser.parse_args(argv)

    log_dir = Path(tempfile.mkdtemp(prefix="benchmark-logs-"))
    results: dict[str, Any] = {}
    if args.output.exists():
        results = json.loads(args.output.read_text())
    if not (args.skip_http and args.skip_pubsub):
        results["machine"] = machine()
    if not args.skip_http:
        results["entitlements_get"] = bench_entitlements_get(args, log_dir)
        print(json.dumps(results["entitlements_get"], indent=2), flush=True)
    if not args.skip_pubsub:
        results["notifications_pubsub"] = bench_notifications(args, log_dir)
        print(json.dumps(results["notifications_pubsub"], indent=2), flush=True)
    if args.scale:
        results["scale"] = bench_scale(args.scale_counts)
        print(json.dumps(results["scale"], indent=2), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.output} (server logs in {log_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
