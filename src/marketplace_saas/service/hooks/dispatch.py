"""The hook dispatcher: deliver every outbox item at least once, in order per ordering key.

An item is due when it is `pending`, its `next_attempt_at` has passed, and no older item with
the same ordering key is still `pending` or `dead`. A dead item therefore holds back the later
items of its key (an entitlement's `cancelled` is never delivered before its `active`); other
keys are never held back. An operator unblocks the key with `hooks retry` (deliver it again) or
`hooks discard` (give up on it).

Claiming is safe with several dispatchers: one unit of work claims the due items
(`uow.hooks.claim_due`: each claim increments `attempts` and moves `next_attempt_at` to the end
of a lease). `attempts` is the claim's fencing token: only the holder of the current claim can
record the outcome. A dispatcher that dies mid-delivery loses its lease when `next_attempt_at`
passes, and the item is delivered again with the same idempotency key. A heartbeat extends the
lease while a slow receiver runs.

No database transaction is open while a receiver runs.
"""

from __future__ import annotations

import random
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from marketplace_saas.adapters.hooks import Delivery, DeliveryFailed, Receivers, validate_receivers
from marketplace_saas.config import Settings
from marketplace_saas.domain.hooks import HookClaim, HookPayload, HookStatus, RetryPolicy
from marketplace_saas.service.hooks.admin import HookUnit
from marketplace_saas.service.procurement.automatic import approve_after_provisioning

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)

MIN_LEASE_SECONDS = 2.0
ERROR_LIMIT = 4000

AfterDelivery = Callable[[Delivery], None]


class HookContext(Protocol):
    """What the dispatcher needs from the composition root (`bootstrap.Container`)."""

    @property
    def settings(self) -> Settings: ...

    def now(self) -> datetime: ...

    def unit_of_work(self) -> AbstractContextManager[HookUnit]: ...


@dataclass
class DispatchResult:
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return len(self.delivered) + len(self.failed) + len(self.dead) + len(self.skipped)

    def merge(self, other: DispatchResult) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.dead += other.dead
        self.skipped += other.skipped


class Dispatcher:
    """Delivers due outbox items to the configured receivers; one instance per process."""

    def __init__(
        self,
        context: HookContext,
        receivers: Receivers,
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 4,
        batch_size: int = 50,
        lease_seconds: float | None = None,
        after_delivery: AfterDelivery | None = None,
        rng: random.Random | None = None,
    ) -> None:
        settings = context.settings
        self.context = context
        self.receivers = receivers
        self.policy = policy or RetryPolicy(max_attempts=settings.hook_max_attempts)
        self.concurrency = max(1, concurrency)
        self.batch_size = batch_size
        # Twice the longest a delivery can take (every receiver, webhook or callable, is bounded
        # by HOOK_TIMEOUT_SECONDS; the heartbeat extends the lease while they run).
        per_item = settings.hook_timeout_seconds * max(1, len(receivers))
        self.lease = timedelta(seconds=lease_seconds or max(2 * per_item, MIN_LEASE_SECONDS))
        self.after_delivery = after_delivery
        self.rng = rng or random.Random()
        self.worker = f"dispatcher-{uuid.uuid4().hex[:8]}"

    # -- claiming ---------------------------------------------------------------------------

    def _claim_batch(self) -> list[HookClaim]:
        now = self.context.now()
        with self.context.unit_of_work() as uow:
            return uow.hooks.claim_due(now, lease_until=now + self.lease, limit=self.batch_size)

    def _record(self, claim: HookClaim, **values: object) -> bool:
        """Write the outcome, only if this claim is still the current one."""
        with self.context.unit_of_work() as uow:
            return uow.hooks.record(claim.id, claim.attempts, values)

    @contextmanager
    def _heartbeat(self, claim: HookClaim) -> Iterator[None]:
        """Keep extending the lease while the receivers run."""
        stop = threading.Event()
        interval = max(self.lease.total_seconds() / 3, 0.05)

        def beat() -> None:
            while not stop.wait(interval):
                self._record(claim, next_attempt_at=self.context.now() + self.lease)

        thread = threading.Thread(target=beat, name=f"hook-lease-{claim.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- delivering -------------------------------------------------------------------------

    def _deliver(self, claim: HookClaim) -> tuple[str, int]:
        bound = log.bind(
            hook=claim.hook,
            hook_id=claim.id,
            ordering_key=claim.ordering_key,
            attempt=claim.attempts,
            worker=self.worker,
        )
        receivers = self.receivers.for_hook(claim.hook)
        if not receivers:
            self._record(
                claim,
                status=HookStatus.SKIPPED.value,
                last_error="no configured receiver wants this hook",
            )
            bound.info("hook.skipped")
            return "skipped", claim.id
        delivery = Delivery(
            item_id=claim.id,
            hook=claim.hook,
            idempotency_key=claim.idempotency_key,
            payload=HookPayload.from_dict(claim.payload),
            attempt=claim.attempts,
            created_at=claim.created_at,
        )
        try:
            with self._heartbeat(claim):
                for receiver in receivers:
                    receiver.deliver(delivery)
                if self.after_delivery is not None:
                    self.after_delivery(delivery)
        except Exception as exc:
            return self._failed(claim, exc, bound), claim.id
        now = self.context.now()
        if self._record(
            claim, status=HookStatus.DELIVERED.value, delivered_at=now, last_error=None
        ):
            bound.info("hook.delivered")
        else:
            bound.warning("hook.delivered_after_lease_lost")
        return "delivered", claim.id

    def _failed(self, claim: HookClaim, exc: Exception, bound: Any) -> str:
        message = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
        message = message[:ERROR_LIMIT]
        if self.policy.exhausted(claim.attempts):
            self._record(claim, status=HookStatus.DEAD.value, last_error=message)
            bound.error("hook.dead", error=message)
            return "dead"
        retry_at = self.context.now() + self.policy.delay(claim.attempts, self.rng)
        self._record(claim, next_attempt_at=retry_at, last_error=message)
        bound.warning("hook.failed", error=message, retry_at=retry_at.isoformat())
        return "failed"

    def run_once(self) -> DispatchResult:
        """Claim the due items (one per ordering key) and deliver them concurrently."""
        result = DispatchResult()
        claims = self._claim_batch()
        if not claims:
            return result
        workers = min(self.concurrency, len(claims))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hook") as pool:
            for outcome, item_id in pool.map(self._deliver, claims):
                getattr(result, outcome).append(item_id)
        return result

    def drain(self, *, max_rounds: int = 1000) -> DispatchResult:
        """Deliver until nothing is due now (items waiting for a retry are left waiting)."""
        total = DispatchResult()
        for _ in range(max_rounds):
            step = self.run_once()
            total.merge(step)
            if not step.attempted:
                break
        return total

    def run_forever(self, stop: threading.Event, *, idle_seconds: float = 1.0) -> None:
        """The dispatcher loop of `serve` and `hooks run`, until `stop` is set."""
        log.info("hooks.dispatcher_started", worker=self.worker, receivers=len(self.receivers))
        while not stop.is_set():
            try:
                step = self.run_once()
            except Exception:  # a database hiccup must not kill the loop; log and go on
                log.exception("hooks.dispatcher_error", worker=self.worker)
                stop.wait(idle_seconds)
                continue
            if not step.attempted:
                stop.wait(idle_seconds)
        log.info("hooks.dispatcher_stopped", worker=self.worker)


def build_dispatcher(container: Container, **options: Any) -> Dispatcher | None:
    """The dispatcher for this container's settings; None when HOOK_RECEIVERS is empty.

    Raises `ConfigurationError` on a misconfigured receiver. With no receiver the outbox keeps
    its items pending (nothing is lost); they go out once receivers are configured.
    """
    receivers = validate_receivers(container.settings)
    if not receivers:
        return None

    def after_delivery(delivery: Delivery) -> None:
        approve_after_provisioning(container, delivery)

    return Dispatcher(container, receivers, after_delivery=after_delivery, **options)


_DISPATCHERS: weakref.WeakKeyDictionary[Container, Dispatcher | None] = weakref.WeakKeyDictionary()
_DISPATCHERS_LOCK = threading.Lock()


def dispatch_due(container: Container) -> DispatchResult | None:
    """Deliver everything due now (the periodic job of `serve`); one dispatcher per container."""
    with _DISPATCHERS_LOCK:
        if container not in _DISPATCHERS:
            _DISPATCHERS[container] = build_dispatcher(container)
        dispatcher = _DISPATCHERS[container]
    if dispatcher is None:
        return None
    result = dispatcher.drain()
    return result if result.attempted else None
