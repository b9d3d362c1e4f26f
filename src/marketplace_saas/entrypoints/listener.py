"""The listener: streaming pull from the provider's subscription into the lifecycle service.

    Pub/Sub --streaming pull--> callback --> delivery.deliver --> handle_message
                                   ack() when it answers ACK (effects committed, or parked)
                                   nack() when it answers NACK (transient: Pub/Sub redelivers)

`stop()` is the clean shutdown: stop pulling, let in-flight callbacks finish (and their acks go
out), nack what was pulled but not started, close the client. `--print` mode (step 1 of Google's
codelab) prints each notification and acknowledges nothing.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from google.cloud import pubsub_v1  # type: ignore[import-untyped]

from marketplace_saas.adapters import pubsub
from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.delivery import NotificationHandler, deliver
from marketplace_saas.service.procurement.inbox import Disposition

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)

Message = Any  # google.cloud.pubsub_v1.subscriber.message.Message (untyped)
Callback = Callable[[Message], None]
LEASE_EXTENSION_SECONDS = 10


class ListenerError(Exception):
    """The streaming pull stopped for good (missing subscription, permission denied, ...)."""


def processing_callback(
    container: Container, *, handler: NotificationHandler | None = None
) -> Callback:
    """Hand each message to the lifecycle service; ack or nack as it decides."""

    def callback(message: Message) -> None:
        disposition = deliver(
            container, message.data, message_id=message.message_id, source="pull", handler=handler
        )
        if disposition is Disposition.ACK:
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
    """One streaming pull on `subscription`, running in the client's background threads."""

    def __init__(
        self,
        settings: Settings,
        callback: Callback,
        *,
        client: Any = None,
        subscription: str | None = None,
    ) -> None:
        self.settings = settings
        self.callback = callback
        self.subscription = subscription or settings.subscription_path
        self._client = client
        self._own_client = client is None
        self._future: Any = None  # StreamingPullFuture

    def start(self) -> None:
        if self._future is not None:
            return
        if self._client is None:
            self._client = pubsub.subscriber_client(self.settings)
        flow = pubsub_v1.types.FlowControl(
            max_messages=self.settings.listener_max_messages,
            # Leases are extended 10 s at a time (the minimum): after a crash, the messages the
            # dead process held come back within 10 s instead of the default 60.
            max_duration_per_lease_extension=LEASE_EXTENSION_SECONDS,
        )
        self._future = self._client.subscribe(
            self.subscription, self.callback, flow_control=flow, await_callbacks_on_shutdown=True
        )
        log.info("listener.started", subscription=self.subscription)

    @property
    def failed(self) -> BaseException | None:
        """The error that ended the stream, if it ended on its own."""
        future = self._future
        if future is None or not future.done() or future.cancelled():
            return None
        error: BaseException | None = future.exception()
        return error

    def wait(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Block until `stop` is set; raise ListenerError if the stream dies first."""
        while not stop.wait(poll):
            error = self.failed
            if error is not None:
                raise ListenerError(describe(error, self.subscription)) from error

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop pulling and wait for in-flight messages to finish (acked or nacked)."""
        future, self._future = self._future, None
        if future is not None:
            future.cancel()
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # the stream's own error, already reported by `failed`
                log.info("listener.stream_ended", error=repr(exc))
            log.info("listener.stopped", subscription=self.subscription)
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None


def describe(error: BaseException, subscription: str) -> str:
    from google.api_core import exceptions as google_exceptions

    if isinstance(error, google_exceptions.NotFound):
        return (
            f"subscription {subscription} not found: create it with "
            "`marketplace-saas pubsub create-subscription`"
        )
    if isinstance(error, google_exceptions.PermissionDenied):
        return f"permission denied on {subscription}: {error}"
    return f"the streaming pull on {subscription} stopped: {error!r}"
