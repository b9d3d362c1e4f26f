"""The periodic jobs `serve` runs: one `Job` line each (sync, inbox resume, usage reports, hook
delivery)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container
    from marketplace_saas.config import Settings


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    run: Callable[[Container], object]
    run_at_start: bool = True
    retry_seconds: float | None = None  # after a failed run, instead of interval_seconds


SYNC_BUSY = "another replica is syncing"


def sync(container: Container) -> object:
    """Reconcile every account and entitlement from the Procurement API (heals missed events).

    One replica at a time (`container.held_lock("sync")`); the others skip this turn."""
    from marketplace_saas.service.procurement.reconcile import sync_all

    with container.held_lock("sync") as mine:
        if not mine:
            return SYNC_BUSY
        return sync_all(container, actor="sync")


RESUME_BUSY = "another replica is resuming the inbox"


def resume_inbox(container: Container) -> object:
    """Process again the notifications Pub/Sub stopped delivering (stored, never settled, older
    than INBOX_RESUME_AFTER_SECONDS). One replica at a time; the others skip this turn."""
    from marketplace_saas.service.procurement.resume import resume_unsettled

    with container.held_lock("inbox-resume") as mine:
        if not mine:
            return RESUME_BUSY
        resumed = resume_unsettled(container)
        return dict(resumed.statuses) if resumed.count else None


def deliver_hooks(container: Container) -> object:
    """Deliver the due provisioning hooks to HOOK_RECEIVERS (failed ones wait for their backoff)."""
    from marketplace_saas.service.hooks.dispatch import dispatch_due

    return dispatch_due(container)


def report_usage(container: Container) -> object:
    """Close the usage windows that are due and send them (hourly windows, checked often)."""
    from marketplace_saas.service.metering.report import report_usage as send_due_reports

    return send_due_reports(container, actor="scheduler")


SYNC_RETRY_SECONDS = 10.0  # a sync that failed (a race with the listener, an outage) runs again
HOOK_POLL_SECONDS = 2.0
INBOX_RESUME_EVERY_SECONDS = 60.0
USAGE_REPORT_SECONDS = 300.0  # a window goes out within 5 minutes of its grace period ending


def sync_job(settings: Settings) -> Job:
    """The periodic sync, at start and every SYNC_INTERVAL_SECONDS (`serve` and `listen`)."""
    return Job("sync", settings.sync_interval_seconds, sync, retry_seconds=SYNC_RETRY_SECONDS)


def inbox_job() -> Job:
    """The inbox resume, every INBOX_RESUME_EVERY_SECONDS (`serve` and `listen`)."""
    return Job("inbox", INBOX_RESUME_EVERY_SECONDS, resume_inbox)


def jobs(settings: Settings) -> list[Job]:
    from marketplace_saas.adapters.hooks import validate_receivers

    # A misconfigured receiver stops `serve` here, before anything is delivered.
    hooks = [Job("hooks", HOOK_POLL_SECONDS, deliver_hooks)] if validate_receivers(settings) else []
    return [
        sync_job(settings),
        inbox_job(),
        Job("usage", USAGE_REPORT_SECONDS, report_usage),
        *hooks,
    ]
