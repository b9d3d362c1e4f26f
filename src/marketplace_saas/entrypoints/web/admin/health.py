"""Health of what the backend depends on: the database, Pub/Sub and the Procurement API.

Each check runs in a worker thread and the page waits at most `TIMEOUT` seconds for all of
them together: a check that has not answered by then is shown as "no answer" (it finishes in the
background). Closing the container waits (at most `SETTLE_SECONDS`) for its checks still
running: a check that went on after it would open a connection on the closed engine or gateway
that nothing ever closes. Results are cached for `CACHE_SECONDS` per container, so reloading the
overview does not call Google each time. The overview loads this as a fragment after the page
itself.
"""

from __future__ import annotations

import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from marketplace_saas.adapters.db.engine import ping
from marketplace_saas.adapters.procurement_errors import ProcurementError, TransientProcurementError

if TYPE_CHECKING:
    from collections.abc import Callable

    from marketplace_saas.bootstrap import Container

TIMEOUT = 2.0
CACHE_SECONDS = 15.0
# How long closing a container waits for its checks still running: less than a Procurement
# probe may take (4 attempts of 20 s), so that `serve` still stops within its grace period.
SETTLE_SECONDS = 30.0
PROBE_ACCOUNT = "health-check-probe"

_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="admin-health")
_cache: weakref.WeakKeyDictionary[Container, tuple[float, list[Check]]] = (
    weakref.WeakKeyDictionary()
)
# The checks of each container that have not finished yet (`_settle` waits for them).
_running: weakref.WeakKeyDictionary[Container, set[Future[Check]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | down | unknown | skipped
    detail: str


def _database(container: Container) -> Check:
    ping(container.engine)
    return Check("Database", "ok", container.engine.dialect.name)


def _procurement(container: Container) -> Check:
    try:
        container.procurement.get_account(PROBE_ACCOUNT)
    except TransientProcurementError as exc:
        return Check("Procurement API", "down", f"unavailable: {exc}")
    except ProcurementError as exc:
        return Check("Procurement API", "down", f"refused: {exc}")
    endpoint = container.settings.procurement_api_endpoint or "cloudcommerceprocurement.googleapis"
    return Check("Procurement API", "ok", f"answered ({endpoint})")


def _pubsub(container: Container) -> Check:
    settings = container.settings
    if settings.sandbox and not settings.pubsub_emulator_host:
        return Check("Pub/Sub", "skipped", "sandbox: notifications are pushed to /pubsub/push")
    from marketplace_saas.adapters import pubsub

    client = pubsub.subscriber_client(settings)
    try:
        client.get_subscription(
            request={"subscription": settings.subscription_path}, timeout=TIMEOUT
        )
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()
    return Check("Pub/Sub", "ok", f"subscription {settings.subscription_path} exists")


CHECKS: list[tuple[str, Callable[[Container], Check]]] = [
    ("Database", _database),
    ("Pub/Sub", _pubsub),
    ("Procurement API", _procurement),
]


def _guarded(name: str, check: Callable[[Container], Check], container: Container) -> Check:
    try:
        return check(container)
    except Exception as exc:  # a health check reports any failure, it never raises
        return Check(name, "down", f"{type(exc).__name__}: {str(exc)[:300]}")


def run_checks(container: Container, *, timeout: float = TIMEOUT) -> list[Check]:
    """Every check, each bounded by `timeout` in total; cached for a few seconds."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(container)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    futures = [_pool.submit(_guarded, name, check, container) for name, check in CHECKS]
    _track(container, futures)
    wait(futures, timeout=timeout)
    results = [
        future.result() if future.done() else Check(name, "unknown", f"no answer in {timeout:g} s")
        for (name, _), future in zip(CHECKS, futures, strict=True)
    ]
    with _lock:
        _cache[container] = (now, results)
    return results


def _track(container: Container, futures: list[Future[Check]]) -> None:
    """Remember `futures` until they finish; the container's first checks register `_settle`."""
    with _lock:
        running = _running.get(container)
        if running is None:
            running = _running[container] = set()
            container.before_close(lambda: _settle(running))
        running.update(futures)
    for future in futures:
        future.add_done_callback(lambda done: _forget(running, done))


def _forget(running: set[Future[Check]], future: Future[Check]) -> None:
    with _lock:
        running.discard(future)


def _settle(running: set[Future[Check]]) -> None:
    """Wait for the checks still running (a closing container's)."""
    with _lock:
        pending = list(running)
    wait(pending, timeout=SETTLE_SECONDS)
