"""The scheduler `serve` runs: jobs at start and on their interval, failures logged, clean stop."""

from __future__ import annotations

import threading
from typing import Any, cast

from structlog.testing import capture_logs

from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.jobs import Job
from marketplace_saas.entrypoints.scheduler import Scheduler
from tests.integration.backend.pubsub_support import wait_for

CONTAINER = cast(Container, object())


def test_a_job_runs_at_start_then_again_on_its_interval() -> None:
    runs: list[object] = []
    scheduler = Scheduler(CONTAINER, [Job("tick", 0.05, runs.append)])
    scheduler.start()
    try:
        wait_for(lambda: len(runs) >= 3, timeout=10, what="three runs")
    finally:
        scheduler.stop()
    assert runs[0] is CONTAINER


def test_interval_zero_runs_once_and_run_at_start_false_waits_an_interval() -> None:
    once: list[object] = []
    later: list[object] = []
    scheduler = Scheduler(
        CONTAINER,
        [Job("once", 0, once.append), Job("later", 3600, later.append, run_at_start=False)],
    )
    scheduler.start()
    wait_for(lambda: scheduler.runs["once"] == 1, timeout=10, what="the single run")
    scheduler.stop()
    assert (len(once), later) == (1, [])


def test_a_failing_job_is_logged_and_does_not_stop_the_others() -> None:
    good: list[object] = []

    def broken(_: Any) -> None:
        raise RuntimeError("boom")

    with capture_logs() as logs:
        scheduler = Scheduler(
            CONTAINER, [Job("broken", 0.05, broken), Job("good", 0.05, good.append)]
        )
        scheduler.start()
        try:
            wait_for(lambda: scheduler.runs["broken"] >= 2 and len(good) >= 2, timeout=10)
        finally:
            scheduler.stop()
    failures = [entry for entry in logs if entry["event"] == "job.failed"]
    assert failures
    assert failures[0]["job"] == "broken"


def test_stop_lets_the_running_job_finish() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(_: Any) -> None:
        started.set()
        release.wait(10)
        finished.set()

    scheduler = Scheduler(CONTAINER, [Job("slow", 3600, slow)])
    scheduler.start()
    assert started.wait(10)
    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # stop() waits: the job cannot finish before it is released
    release.set()
    stopper.join(10)
    assert finished.is_set()
    assert not stopper.is_alive()


def test_a_failed_run_is_tried_again_after_retry_seconds_not_the_interval() -> None:
    """The start-up sync that met a race runs again within seconds, not an interval later."""
    attempts: list[object] = []

    def flaky(container: Any) -> str:
        attempts.append(container)
        if len(attempts) == 1:
            raise RuntimeError("duplicate key: the listener inserted the same row")
        return "synced"

    scheduler = Scheduler(CONTAINER, [Job("sync", 3600, flaky, retry_seconds=0.05)])
    scheduler.start()
    try:
        wait_for(lambda: len(attempts) >= 2, timeout=10, what="the retry")
    finally:
        scheduler.stop()
    assert len(attempts) == 2  # after the success, the next run waits the hour
