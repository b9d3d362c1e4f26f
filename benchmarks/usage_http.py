"""The client side of the `POST /v1/usage` benchmarks (`metering`, `replicas`), and CPU counters.

`post_batches(urls, bodies, clients)`: `clients` threads send pre-serialised batches, thread `w`
its share `bodies[w::clients]`, spread round-robin over the servers at `urls`; the accepted
records, the wall time from the first request to the last answer, each batch's latency, and
this process's CPU time over the run (the clients' share of the machine).

`cpu_seconds(pid)` reads a process's user + system time from `/proc` (Linux), so that a run can
say where the machine's CPU went: clients, each server process, the database server's backends.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@dataclass(frozen=True)
class ClientRun:
    accepted: int
    seconds: float
    latencies: list[float]  # per batch, sorted
    cpu_seconds: float  # this process (the client threads) over the run

    @property
    def records_per_second(self) -> int:
        return round(self.accepted / self.seconds)

    @property
    def p50_ms(self) -> float:
        return round(1000 * self.latencies[len(self.latencies) // 2], 1)

    @property
    def p99_ms(self) -> float:
        return round(1000 * self.latencies[max(int(len(self.latencies) * 0.99) - 1, 0)], 1)


def post_batches(urls: Sequence[str], bodies: Sequence[bytes], clients: int) -> ClientRun:
    """Send every body to `urls` from `clients` threads; each server is warmed once first."""
    for url in urls:  # not counted
        httpx.post(url, content=b'{"records": []}', headers=HEADERS, timeout=60)
    accepted = [0] * clients
    latencies: list[float] = []

    def client(worker: int) -> None:
        with httpx.Client(timeout=120) as http:
            for n, body in enumerate(bodies[worker::clients]):
                started = time.perf_counter()
                response = http.post(urls[(worker + n) % len(urls)], content=body, headers=HEADERS)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                accepted[worker] += response.json()["accepted"]

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return ClientRun(sum(accepted), elapsed, sorted(latencies), cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (0 when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
