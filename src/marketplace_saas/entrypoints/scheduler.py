"""Runs the periodic jobs of `entrypoints/jobs.py`, each in its own background thread.

A job runs once at start (unless `run_at_start` is False), then every `interval_seconds`
(0: at start only). A failing run is logged and the job goes on at its next interval, or after
`retry_seconds` when the job has them (the sync at start may meet the listener inserting the same
new row: it runs again soon instead of an hour later). `stop()` lets a run in progress finish,
then returns. A run's result is logged as fields (`closed=2 accepted=2 errors=0`), never as a
Python repr: `log_fields(result)`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from marketplace_saas.entrypoints.jobs import Job

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)


RESERVED = {"event", "job", "seconds", "level", "timestamp", "logger"}


def log_fields(result: object) -> dict[str, Any]:
    """A job's result as flat log fields: numbers and text as they are, times in RFC 3339, a list
    or mapping by its length (`errors=0`), anything else as text."""
    if hasattr(result, "to_json"):
        data = result.to_json()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        data = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    elif isinstance(result, dict):
        data = result
    else:
        return {"result": str(result)}
    fields: dict[str, Any] = {}
    for key, value in data.items():
        name = f"result_{key}" if key in RESERVED else str(key)
        if isinstance(value, list | tuple | set | frozenset | dict):
            fields[name] = len(value)
        elif isinstance(value, datetime):
            fields[name] = value.isoformat()
        elif isinstance(value, Decimal):
            fields[name] = f"{value:f}"
        elif value is None or isinstance(value, str | int | float | bool):
            fields[name] = value
        else:
            fields[name] = str(value)
    return fields


class Scheduler:
    def __init__(self, container: Container, jobs: list[Job]) -> None:
        self.container = container
        self.jobs = list(jobs)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.runs: dict[str, int] = {job.name: 0 for job in self.jobs}

    def start(self) -> None:
        for job in self.jobs:
            thread = threading.Thread(target=self._loop, args=(job,), name=f"job-{job.name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _loop(self, job: Job) -> None:
        if not job.run_at_start and not self._wait(job.interval_seconds):
            return
        while not self._stop.is_set():
            ok = self.run_once(job)
            wait = job.interval_seconds
            if not ok and job.retry_seconds is not None:
                wait = job.retry_seconds
            if not self._wait(wait):
                return

    def _wait(self, interval: float) -> bool:
        """Sleep `interval` seconds; False when stopping (or when the job runs only once)."""
        if interval <= 0:
            return False
        return not self._stop.wait(interval)

    def run_once(self, job: Job) -> bool:
        """Run `job` once; False when it raised (logged)."""
        started = time.perf_counter()
        try:
            result = job.run(self.container)
        except Exception:
            log.exception("job.failed", job=job.name, retry_in=job.retry_seconds)
            return False
        else:
            # A job that had nothing to report (the hook dispatcher's idle ticks, every few
            # seconds) logs at debug, so the info log shows work done, not heartbeats.
            emit = log.debug if result is None else log.info
            fields = log_fields(result) if result is not None else {}
            emit(
                "job.finished",
                job=job.name,
                seconds=round(time.perf_counter() - started, 3),
                **fields,
            )
        finally:
            self.runs[job.name] += 1
        return True

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
