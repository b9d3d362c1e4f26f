"""The periodic jobs `serve` runs: one `Job` line each (sync, usage reports, hook delivery)."""

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


def sync(container: Container) -> object:
    """Reconcile every account and entitlement from the Procurement API (heals missed events)."""
    from marketplace_saas.service.reconcile import sync_all

    return sync_all(container, actor="sync")


def jobs(settings: Settings) -> list[Job]:
    return [
        Job("sync", settings.sync_interval_seconds, sync),
    ]
