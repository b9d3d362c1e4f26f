"""The notifier: records every notification and delivers it from a background worker.

`publish()` only records the payload and queues it, so the state machine never waits on the
network. One worker thread takes deliveries off a queue ordered by due time and hands them to the
targets; failures come back to `_finished()`, which schedules a retry with exponential backoff or
gives up after `RetryPolicy.max_attempts`.

Notification faults (`FaultInjector.settings.notifications`) apply before a notification is
queued, in the caller's order, with the injector's seeded generator:
- `duplicateRate`: the same payload (same `eventId`) is delivered twice, as two messages.
- `reorder`: notifications are held in batches of `reorder_window`; a full batch is released
  shuffled. A partial batch is released, shuffled, after `reorder_hold` seconds without a new
  notification, or by `flush()`. For the same seed and the same sequence of `publish()` calls
  followed by `flush()`, the delivery order is always the same.
- `delayMs`: each notification becomes due that long after it is released.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog

from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.notifier.targets import (
    Message,
    PermanentDeliveryError,
    Target,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How failed deliveries are retried: backoff doubles from `initial` up to `maximum`."""

    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    multiplier: float = 2.0
    max_attempts: int = 10

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempts - 1))


@dataclass
class NotifierStats:
    """Counters since construction or the last `reset()`; deliveries count per target."""

    published: int = 0
    duplicated: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    pending: int = 0


@dataclass(slots=True)
class _Delivery:
    target: Target
    message: Message
    generation: int
    attempts: int = 0


@dataclass(frozen=True)
class _Notification:
    provider_id: str
    data: bytes


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeliveryQueue:
    """The worker, its due-time queue, the reorder hold, and the counters flush() waits on."""

    def __init__(
        self,
        faults: FaultInjector,
        targets: Iterable[Target],
        *,
        retry: RetryPolicy,
        reorder_window: int,
        reorder_hold: float,
        history_limit: int,
    ) -> None:
        if reorder_window < 2:
            raise ValueError("reorder_window must be at least 2")
        self._faults = faults
        self.targets: tuple[Target, ...] = tuple(targets)
        self._retry = retry
        self._reorder_window = reorder_window
        self._reorder_hold = reorder_hold
        self._cond = threading.Condition()
        self._published: deque[bytes] = deque(maxlen=history_limit)
        self._queue: list[tuple[float, int, _Delivery]] = []  # a heap: (due, seq, delivery)
        self._held: list[_Notification] = []
        self._held_since = 0.0
        self._seq = itertools.count()
        self._message_ids = itertools.count(1)
        self._generation = 0
        self._outstanding = 0
        self._stats = NotifierStats()
        self._closed = False
        self._worker_waiting = False
        self._worker: threading.Thread | None = None
        if self.targets:
            self._worker = threading.Thread(target=self._run, name="emulator-notifier", daemon=True)
            self._worker.start()

    # --- called by the emulator ------------------------------------------------------------

    def publish(self, provider_id: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        with self._cond:
            self._published.append(data)
            self._stats.published += 1
            if not self.targets or self._closed:
                return
            settings = self._faults.settings.notifications
            batch = [_Notification(provider_id, data)]
            rate = settings.duplicate_rate
            if rate > 0 and self._faults.notification_rng().random() < rate:
                batch.append(batch[0])
                self._stats.duplicated += 1
            if settings.reorder:
                if not self._held:
                    self._held_since = time.monotonic()
                self._held.extend(batch)
                if len(self._held) >= self._reorder_window:
                    self._release_held()
            else:
                self._release_held()  # reordering was just switched off: keep nothing back
                self._enqueue(batch)
            if self._worker_waiting:
                self._cond.notify_all()

    def published(self) -> list[dict[str, Any]]:
        with self._cond:
            history = list(self._published)
        return [json.loads(data) for data in history]

    def stats(self) -> NotifierStats:
        with self._cond:
            return replace(self._stats, pending=self._outstanding + len(self._held))

    def flush(self, timeout: float) -> bool:
        with self._cond:
            self._release_held()
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self._outstanding == 0 and not self._held, timeout=max(timeout, 0.0)
            )

    def reset(self) -> None:
        with self._cond:
            self._generation += 1
            self._queue.clear()
            self._held.clear()
            self._published.clear()
            self._outstanding = 0
            self._stats = NotifierStats()
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._generation += 1
            self._queue.clear()
            self._held.clear()
            self._outstanding = 0
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
        for target in self.targets:
            try:
                target.close()
            except Exception:  # closing is best effort; the emulator is shutting down anyway
                log.warning("notifier.close_failed", target=target.name, exc_info=True)

    # --- inside the lock ---------------------------------------------------------------------

    def _release_held(self) -> None:
        if not self._held:
            return
        batch, self._held = self._held, []
        self._faults.notification_rng().shuffle(batch)
        self._enqueue(batch)

    def _enqueue(self, batch: list[_Notification]) -> None:
        due = time.monotonic() + self._faults.settings.notifications.delay_ms / 1000.0
        publish_time = _now_rfc3339()
        for notification in batch:
            message_id = str(next(self._message_ids))
            for target in self.targets:
                message = Message(
                    notification.provider_id, notification.data, message_id, publish_time
                )
                delivery = _Delivery(target, message, self._generation)
                heapq.heappush(self._queue, (due, next(self._seq), delivery))
                self._outstanding += 1

    # --- the worker ----------------------------------------------------------------------------

    def _due_now(self) -> list[_Delivery] | None:
        """Wait until some deliveries are due and take them all, in order; None once closed."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._held and now - self._held_since >= self._reorder_hold:
                    self._release_held()
                due: list[_Delivery] = []
                while self._queue and self._queue[0][0] <= now:
                    due.append(heapq.heappop(self._queue)[2])
                if due:
                    return due
                waits = [self._queue[0][0] - now] if self._queue else []
                if self._held:
                    waits.append(self._held_since + self._reorder_hold - now)
                self._worker_waiting = True
                self._cond.wait(timeout=min(waits) if waits else None)
                self._worker_waiting = False
            return None

    def _run(self) -> None:
        while (batch := self._due_now()) is not None:
            for delivery in batch:
                if delivery.generation != self._generation:
                    continue  # reset() or close() came while this batch was being sent
                delivery.attempts += 1
                done = partial(self._finished, delivery)
                try:
                    delivery.target.deliver(delivery.message, done)
                except Exception as exc:  # a target's own failure is a failed attempt, not fatal
                    done(exc)

    def _finished(self, delivery: _Delivery, error: BaseException | None) -> None:
        with self._cond:
            if delivery.generation != self._generation:
                return  # reset or closed while this delivery was in flight
            if error is None:
                self._stats.delivered += 1
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._cond.notify_all()  # wake flush()
                return
            if (
                isinstance(error, PermanentDeliveryError)
                or delivery.attempts >= self._retry.max_attempts
            ):
                self._stats.failed += 1
                self._outstanding -= 1
                log.warning(
                    "notifier.gave_up",
                    target=delivery.target.name,
                    provider_id=delivery.message.provider_id,
                    message_id=delivery.message.message_id,
                    attempts=delivery.attempts,
                    error=repr(error),
                )
            else:
                self._stats.retried += 1
                due = time.monotonic() + self._retry.backoff(delivery.attempts)
                heapq.heappush(self._queue, (due, next(self._seq), delivery))
                log.info(
                    "notifier.retry",
                    target=delivery.target.name,
                    provider_id=delivery.message.provider_id,
                    attempts=delivery.attempts,
                    error=repr(error),
                )
            self._cond.notify_all()
