"""The listener: synchronous pull from the provider's subscription into the lifecycle service.

    Pub/Sub --pull (2 s long-poll)--> worker threads --> delivery.deliver --> handle_message
                                   ack() when it answers ACK (effects committed, or parked)
                                   nack() when it answers NACK (transient: Pub/Sub redelivers)

Why pull and not streaming pull: a streaming pull stream is a standing order for messages. The
Pub/Sub emulator keeps dealing new messages to the stream of a client that died (SIGKILL) or
even stopped cleanly, as if it were alive, for as long as it runs; each such message waits out
its lease (10 s or more) and is dealt again, to the dead stream as likely as not. After a crash
and a restart, most messages published afterwards reached the new listener late or not within
minutes (docs/operations.md). A pull is a request that lives 2 s at most: a dead process holds
only what its last pull took, until the subscription's ack deadline.

At most LISTENER_MAX_MESSAGES messages are in flight; `WORKERS` threads process them; a pull
waits until half that many have room. The leases of messages in flight are extended every
`LEASE_RENEW_SECONDS`; acks and nacks go out in batches every `SETTLE_EVERY_SECONDS` (a crash
before that only means a redelivery, which the inbox recognises as settled). A callback that
neither acks nor nacks (`--print`) leaves the message to come back once its lease expires.

A message whose worker has not returned after `LISTENER_STUCK_SECONDS` (default 120 s; its
lease is still being extended, so Pub/Sub will not give it to another replica) is logged once as
`listener.message_stuck`, with the worker's current stack: what it waits for is what an operator
needs to see.

`stop()` is the clean shutdown: stop pulling, nack what was pulled but not started, let
in-flight callbacks finish (and their acks go out), close the client.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from google.api_core import exceptions as google_exceptions

from marketplace_saas.adapters import crash_points, pubsub
from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.delivery import NotificationHandler, deliver
from marketplace_saas.service.procurement.inbox import Disposition

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)

Callback = Callable[["Message"], None]
PULL_TIMEOUT_SECONDS = 2.0
MAX_PULL = 100
WORKERS = 10
LEASE_SECONDS = 20  # as the subscription's ack deadline (`pubsub create-subscription`)
LEASE_RENEW_SECONDS = 5.0
SETTLE_EVERY_SECONDS = 0.02  # acks and nacks go out in batches, at most this much later
FATAL = (
    google_exceptions.NotFound,
    google_exceptions.PermissionDenied,
    google_exceptions.InvalidArgument,
    google_exceptions.Unauthenticated,
)


class ListenerError(Exception):
    """The pull stopped for good (missing subscription, permission denied, ...)."""


class Message:
    """One pulled message: `data`, `message_id`, and `ack()` / `nack()` (the first one counts)."""

    def __init__(self, listener: Listener, received: Any) -> None:
        self.data: bytes = received.message.data
        self.message_id: str = received.message.message_id
        self.ack_id: str = received.ack_id
        self._listener = listener
        self.settled = False
        self.started: float | None = None  # when a worker began it (time.monotonic())
        self.worker: int | None = None  # that worker's thread id
        self.reported_stuck = False

    def ack(self) -> None:
        self._listener.settle(self, ack=True)

    def nack(self) -> None:
        self._listener.settle(self, ack=False)


def processing_callback(
    container: Container, *, handler: NotificationHandler | None = None
) -> Callback:
    """Hand each message to the lifecycle service; ack or nack as it decides."""

    def callback(message: Message) -> None:
        disposition = deliver(
            container, message.data, message_id=message.message_id, source="pull", handler=handler
        )
        if disposition is Disposition.ACK:
            crash_points.reached("listener.before_ack")
            message.ack()
        else:
            message.nack()

    return callback


def printing_callback(out: TextIO | None = None) -> Callback:
    """Print each notification as pretty JSON; acknowledge nothing (codelab step 1)."""
    lock = threading.Lock()

    def callback(message: Message) -> None:
        try:
            text = json.dumps(json.loads(message.data), indent=2, sort_keys=True)
        except (ValueError, UnicodeDecodeError):
            text = repr(message.data)
        with lock:
            stream = out or sys.stdout
            stream.write(f"# messageId {message.message_id}\n{text}\n")
            stream.flush()

    return callback


class Listener:
    """Pulls from `subscription` in a background thread; callbacks run on `WORKERS` threads."""

    def __init__(
        self,
        settings: Settings,
        callback: Callback,
        *,
        client: Any = None,
        subscription: str | None = None,
        stuck_seconds: float | None = None,  # LISTENER_STUCK_SECONDS unless given
    ) -> None:
        self.settings = settings
        self.stuck_seconds = (
            settings.listener_stuck_seconds if stuck_seconds is None else stuck_seconds
        )
        self.callback = callback
        self.subscription = subscription or settings.subscription_path
        self._client = client
        self._own_client = client is None
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._in_flight: dict[str, Message] = {}
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._workers: ThreadPoolExecutor | None = None
        self._settling: dict[bool, list[Message]] = {True: [], False: []}  # ack? -> messages

    def start(self) -> None:
        if self._threads:
            return
        if self._client is None:
            self._client = pubsub.subscriber_client(self.settings)
        self._stopping.clear()
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="listener")
        loops = (
            ("listener-pull", self._pull_loop),
            ("listener-lease", self._leases),
            ("listener-settle", self._settle_loop),
        )
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("listener.started", subscription=self.subscription)

    # -- pulling ----------------------------------------------------------------------------------

    def _room(self) -> int:
        """Wait until there is room for a pull of at least half of LISTENER_MAX_MESSAGES (at
        most MAX_PULL); how many may come. Not one pull per finished message: each pull is a
        request that both this process and Pub/Sub pay for, and half the limit still in flight
        keeps the workers busy meanwhile."""
        limit = self.settings.listener_max_messages
        most = min(limit, MAX_PULL)
        least = max(1, most // 2)
        with self._changed:
            while limit - len(self._in_flight) < least and not self._stopping.is_set():
                self._changed.wait(0.5)
            return min(limit - len(self._in_flight), MAX_PULL)

    def _pull_loop(self) -> None:
        pause = 0.1
        while not self._stopping.is_set():
            room = self._room()
            if self._stopping.is_set():
                return
            try:
                response = self._client.pull(
                    request={"subscription": self.subscription, "max_messages": room},
                    timeout=PULL_TIMEOUT_SECONDS,
                    retry=None,
                )
            except google_exceptions.DeadlineExceeded:
                continue  # nothing to pull within the long-poll
            except FATAL as exc:
                self._error = exc
                return
            except Exception as exc:  # Unavailable and the like: Pub/Sub or the network
                log.warning("listener.pull_failed", error=repr(exc), retry_in=pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 10.0)
                continue
            pause = 0.1
            for received in response.received_messages:
                self._dispatch(Message(self, received))

    def _dispatch(self, message: Message) -> None:
        if self._stopping.is_set() or self._workers is None:
            message.nack()
            return
        with self._changed:
            self._in_flight[message.ack_id] = message
        self._workers.submit(self._run, message)

    def _run(self, message: Message) -> None:
        try:
            if self._stopping.is_set():
                message.nack()  # pulled but not started before stop(): someone else takes it
            else:
                message.worker, message.started = threading.get_ident(), time.monotonic()
                self.callback(message)
        except Exception:
            log.exception("listener.callback_failed", message_id=message.message_id)
            message.nack()
        finally:
            with self._changed:
                self._in_flight.pop(message.ack_id, None)
                self._changed.notify_all()

    # -- acks and leases --------------------------------------------------------------------------

    def settle(self, message: Message, *, ack: bool) -> None:
        """Queue an ack, or a nack (a zero ack deadline: delivered again at once); the first
        one counts. They go out with the next batch."""
        with self._changed:
            if message.settled:
                return
            message.settled = True
            self._settling[ack].append(message)

    def _settle_loop(self) -> None:
        while not self._stopping.wait(SETTLE_EVERY_SECONDS):
            self._send_settled()
        self._send_settled()

    def _send_settled(self) -> None:
        with self._changed:
            batches, self._settling = self._settling, {True: [], False: []}
        for ack, messages in batches.items():
            if not messages:
                continue
            request: dict[str, Any] = {
                "subscription": self.subscription,
                "ack_ids": [m.ack_id for m in messages],
            }
            try:
                if ack:
                    self._client.acknowledge(request=request)
                else:
                    self._client.modify_ack_deadline(request={**request, "ack_deadline_seconds": 0})
            except Exception as exc:  # they come back when their leases end: we are idempotent
                log.warning(
                    "listener.settle_failed", ack=ack, messages=len(messages), error=repr(exc)
                )

    def _leases(self) -> None:
        while not self._stopping.wait(LEASE_RENEW_SECONDS):
            with self._changed:
                ack_ids = [a for a, m in self._in_flight.items() if not m.settled]
                in_flight = list(self._in_flight.values())
            self._report_stuck(in_flight)
            if not ack_ids:
                continue
            try:
                self._client.modify_ack_deadline(
                    request={
                        "subscription": self.subscription,
                        "ack_ids": ack_ids,
                        "ack_deadline_seconds": LEASE_SECONDS,
                    }
                )
            except Exception as exc:
                log.warning("listener.lease_failed", error=repr(exc), messages=len(ack_ids))

    def _report_stuck(self, messages: list[Message]) -> None:
        """Log once each message a worker has held past `stuck_seconds`, with that worker's
        stack (a hung lock wait, a call that never returns)."""
        now = time.monotonic()
        frames = None
        for message in messages:
            if message.reported_stuck or message.started is None or message.settled:
                continue
            held = now - message.started
            if held < self.stuck_seconds:
                continue
            frames = frames if frames is not None else sys._current_frames()
            frame = frames.get(message.worker or 0)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(finished)"
            message.reported_stuck = True
            log.warning(
                "listener.message_stuck",
                message_id=message.message_id,
                seconds=round(held, 1),
                stack=stack,
            )

    # -- state and shutdown -----------------------------------------------------------------------

    @property
    def failed(self) -> BaseException | None:
        """The error that ended the pull, if it ended on its own."""
        return self._error

    def wait(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Block until `stop` is set; raise ListenerError if the pull dies first."""
        while not stop.wait(poll):
            error = self.failed
            if error is not None:
                raise ListenerError(describe(error, self.subscription)) from error

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop pulling and wait for in-flight messages to finish (acked or nacked)."""
        if self._threads:
            self._stopping.set()
            for thread in self._threads:
                thread.join(timeout)
            self._threads.clear()
            if self._workers is not None:
                self._workers.shutdown(wait=True)
                self._workers = None
            self._send_settled()  # what the last callbacks acked or nacked
            log.info("listener.stopped", subscription=self.subscription)
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None


def describe(error: BaseException, subscription: str) -> str:
    if isinstance(error, google_exceptions.NotFound):
        return (
            f"subscription {subscription} not found: create it with "
            "`marketplace-saas pubsub create-subscription`"
        )
    if isinstance(error, google_exceptions.PermissionDenied):
        return f"permission denied on {subscription}: {error}"
    return f"the pull on {subscription} stopped: {error!r}"
