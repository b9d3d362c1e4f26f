"""Hook receivers: Python callables and signed HTTPS webhooks, chosen by `HOOK_RECEIVERS`.

`HOOK_RECEIVERS` is a comma-separated list. Each item is a receiver, optionally preceded by the
hooks it wants (`pattern=`; a hook name, `prefix.*` or `*`; no pattern means every hook)::

    python:myapp.hooks:handle                       every hook, to an in-process function
    https://app.example.com/marketplace/hooks       every hook, as a signed webhook
    entitlement.*=https://app.example.com/hooks,account.deleted=python:myapp.gdpr:erase

A callable is called as ``handle(hook, payload, idempotency_key=key)`` with `payload` a
`HookPayload`; returning is success, raising is failure. A webhook is a `POST` of the JSON
envelope `{"id", "hook", "created_at", "attempt", "data"}` with the headers
`Marketplace-Signature` (see `marketplace_saas.webhooks`), `Idempotency-Key` and
`Marketplace-Hook`; any 2xx is success. Redirects are not followed. Plain `http://` is accepted
for loopback hosts and in the sandbox only.

Exceptions: `DeliveryFailed` (this attempt failed; the dispatcher retries), and
`config.ConfigurationError` from `validate_receivers` (refuse to start).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from marketplace_saas import webhooks
from marketplace_saas.config import ConfigurationError, Settings
from marketplace_saas.domain.hooks import HOOK_NAMES, HookPayload

SANDBOX_WEBHOOK_SECRET = "sandbox-only-webhook-secret-not-for-production"  # noqa: S105
USER_AGENT = "marketplace-saas-hooks/1"
_PATTERN = re.compile(r"^[a-z_.*]+$")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class DeliveryFailed(Exception):
    """One delivery attempt failed (timeout, refused, non-2xx, an exception in the callable)."""


@dataclass(frozen=True)
class Delivery:
    """One attempt to hand an outbox item to a receiver."""

    item_id: int
    hook: str
    idempotency_key: str
    payload: HookPayload
    attempt: int
    created_at: datetime

    def body(self) -> bytes:
        envelope = {
            "id": self.idempotency_key,
            "hook": self.hook,
            "created_at": self.created_at.isoformat(),
            "attempt": self.attempt,
            "data": self.payload.to_dict(),
        }
        return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Receiver(Protocol):
    target: str

    def wants(self, hook: str) -> bool: ...

    def deliver(self, delivery: Delivery) -> None: ...


HookCallable = Callable[..., object]


@dataclass
class PythonReceiver:
    """A provider's function, called in a worker thread and awaited for at most `timeout`.

    A call that does not return in time fails the attempt (retried later, then dead-lettered,
    like a webhook that times out). The abandoned call may still finish: that is one more
    delivery of the same idempotency key, which at-least-once delivery allows.
    """

    target: str
    function: HookCallable
    patterns: tuple[str, ...] = ("*",)
    timeout: float = 10.0

    def wants(self, hook: str) -> bool:
        return any(fnmatchcase(hook, pattern) for pattern in self.patterns)

    def deliver(self, delivery: Delivery) -> None:
        failure: list[BaseException] = []

        def call() -> None:
            try:
                self.function(
                    delivery.hook, delivery.payload, idempotency_key=delivery.idempotency_key
                )
            except BaseException as exc:  # handed to the waiting thread, which classifies it
                failure.append(exc)

        worker = threading.Thread(target=call, name=f"hook-call-{self.target}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise DeliveryFailed(
                f"{self.target} did not return within {self.timeout:g}s "
                "(the call was abandoned; the hook will be delivered again)"
            )
        if failure:
            exc = failure[0]
            if not isinstance(exc, Exception):
                raise exc
            detail = "".join(traceback.format_exception(exc, limit=-3)).strip()
            raise DeliveryFailed(
                f"{self.target} raised {type(exc).__name__}: {exc}\n{detail}"
            ) from exc


@dataclass
class WebhookReceiver:
    target: str
    secrets: tuple[str, ...]
    timeout: float
    patterns: tuple[str, ...] = ("*",)
    transport: httpx.BaseTransport | None = None  # tests may pass httpx.MockTransport

    def wants(self, hook: str) -> bool:
        return any(fnmatchcase(hook, pattern) for pattern in self.patterns)

    def deliver(self, delivery: Delivery) -> None:
        body = delivery.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            webhooks.SIGNATURE_HEADER: webhooks.sign(body, self.secrets),
            webhooks.IDEMPOTENCY_HEADER: delivery.idempotency_key,
            webhooks.HOOK_HEADER: delivery.hook,
        }
        try:
            with httpx.Client(
                timeout=self.timeout, follow_redirects=False, transport=self.transport
            ) as client:
                response = client.post(self.target, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"{self.target} timed out after {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            kind = type(exc).__name__
            raise DeliveryFailed(f"{self.target} unreachable ({kind}: {exc})") from exc
        if not 200 <= response.status_code < 300:
            text = response.text[:300].strip()
            raise DeliveryFailed(f"{self.target} answered HTTP {response.status_code}: {text}")


@dataclass(frozen=True)
class Receivers:
    """The configured receivers; a hook goes to every receiver that wants it, in order."""

    receivers: tuple[Receiver, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.receivers)

    def __len__(self) -> int:
        return len(self.receivers)

    def for_hook(self, hook: str) -> list[Receiver]:
        return [receiver for receiver in self.receivers if receiver.wants(hook)]


def webhook_secrets(settings: Settings) -> tuple[str, ...]:
    """The signing secrets (comma-separated in HOOK_WEBHOOK_SECRET for a rotation)."""
    raw = settings.hook_webhook_secret.get_secret_value() if settings.hook_webhook_secret else ""
    secrets = tuple(item.strip() for item in raw.split(",") if item.strip())
    if secrets:
        return secrets
    return (SANDBOX_WEBHOOK_SECRET,) if settings.sandbox else ()


def _split(spec: str) -> list[tuple[str, str]]:
    """`[pattern=]target` items; an `=` inside a URL or module path is not a pattern."""
    items = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        head, sep, tail = item.partition("=")
        if sep and _PATTERN.match(head.strip()):
            items.append((head.strip(), tail.strip()))
        else:
            items.append(("*", item))
    return items


def _check_pattern(pattern: str, target: str) -> None:
    if pattern == "*" or pattern in HOOK_NAMES:
        return
    if "*" in pattern and any(fnmatchcase(name, pattern) for name in HOOK_NAMES):
        return
    known = ", ".join(sorted(HOOK_NAMES))
    raise ConfigurationError(
        f"HOOK_RECEIVERS: {pattern!r} (for {target}) matches no hook; known hooks: {known}"
    )


def load_callable(target: str) -> HookCallable:
    """`python:package.module:function` -> the function, or a clear ConfigurationError."""
    spec = target.removeprefix("python:")
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(
            f"HOOK_RECEIVERS: {target!r} is not of the form python:package.module:function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing while it is imported
        raise ConfigurationError(
            f"HOOK_RECEIVERS: cannot import module {module_name!r} for {target!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    function: Any = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ConfigurationError(
                f"HOOK_RECEIVERS: module {module_name!r} has no attribute {attribute!r}"
            )
    if not callable(function):
        raise ConfigurationError(f"HOOK_RECEIVERS: {target!r} is not callable")
    return function  # type: ignore[no-any-return]


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(target: str, settings: Settings) -> None:
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigurationError(f"HOOK_RECEIVERS: bad URL {target!r}: {exc}") from exc
    if parts.scheme not in ("https", "http"):
        raise ConfigurationError(
            f"HOOK_RECEIVERS: {target!r}: a receiver is python:module:function or an https:// URL"
        )
    if not parts.hostname:
        raise ConfigurationError(f"HOOK_RECEIVERS: bad URL {target!r}: no host")
    if parts.scheme == "http" and not (settings.sandbox or _is_loopback(parts.hostname)):
        raise ConfigurationError(
            f"HOOK_RECEIVERS: {target!r}: webhooks must use https:// "
            "(plain http is allowed for loopback hosts and in the sandbox only)"
        )


def validate_receivers(
    settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> Receivers:
    """Parse and check `HOOK_RECEIVERS`: import every callable, check every URL and the secret.

    Raises `ConfigurationError` with a message naming the bad receiver; `serve` calls this
    before it starts and refuses to start on error.
    """
    patterns: dict[str, list[str]] = {}
    for pattern, target in _split(settings.hook_receivers):
        _check_pattern(pattern, target)
        patterns.setdefault(target, []).append(pattern)
    receivers: list[Receiver] = []
    for target, wanted in patterns.items():
        if target.startswith("python:"):
            receivers.append(
                PythonReceiver(
                    target, load_callable(target), tuple(wanted), settings.hook_timeout_seconds
                )
            )
            continue
        _check_url(target, settings)
        secrets = webhook_secrets(settings)
        if not secrets:
            raise ConfigurationError(
                "HOOK_WEBHOOK_SECRET must be set to sign webhooks (32 random characters or more)"
            )
        if not settings.sandbox and any(len(secret) < 32 for secret in secrets):
            raise ConfigurationError("HOOK_WEBHOOK_SECRET must be at least 32 characters")
        receivers.append(
            WebhookReceiver(
                target, secrets, settings.hook_timeout_seconds, tuple(wanted), transport
            )
        )
    return Receivers(tuple(receivers))
