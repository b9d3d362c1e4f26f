"""Sign and verify provisioning webhooks: the helper a provider's app uses to trust our calls.

Every webhook we send carries one header::

    Marketplace-Signature: t=1718000000,v1=5257a869e7ec...8d8bd   (64 hex digits)

`v1` is the hex HMAC-SHA256, keyed with the shared secret (`HOOK_WEBHOOK_SECRET`), of the
ASCII timestamp, a dot, and the raw request body: ``f"{t}." + body``. During a secret rotation
the header carries one `v1` per secret; a receiver accepts the request when any of them matches.

A receiver verifies before it parses the body::

    from marketplace_saas.webhooks import SignatureError, verify

    try:
        event = verify(raw_body, headers["Marketplace-Signature"], secret)
    except SignatureError:
        return 400

`verify` compares in constant time and refuses a timestamp further than `tolerance` seconds from
the receiver's clock (replay protection). It returns the parsed JSON body. This module uses the
standard library only, so a provider can copy it into an app that does not install us.

Exceptions::

    SignatureError            the request must be rejected
     +-- MalformedSignature   the header is missing or not `t=...,v1=...`
     +-- TimestampOutOfRange  the timestamp is too old or in the future (replay protection)
     +-- SignatureMismatch    no `v1` matches the body under any of the secrets
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

SIGNATURE_HEADER = "Marketplace-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
HOOK_HEADER = "Marketplace-Hook"
DEFAULT_TOLERANCE_SECONDS = 300
SCHEME = "v1"


class SignatureError(ValueError):
    """The webhook's signature is not acceptable: reject the request."""


class MalformedSignature(SignatureError):
    """The signature header is missing or malformed."""


class TimestampOutOfRange(SignatureError):
    """The signed timestamp is outside the tolerance: a replay, or a skewed clock."""


class SignatureMismatch(SignatureError):
    """No signature in the header matches the body."""


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _secrets(secret: str | bytes | Iterable[str | bytes]) -> list[bytes]:
    if isinstance(secret, str | bytes):
        keys = [_as_bytes(secret)]
    else:
        keys = [_as_bytes(item) for item in secret]
    if not keys or any(not key for key in keys):
        raise ValueError("a webhook secret must not be empty")
    return keys


def compute_signature(body: bytes, secret: str | bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}." + body` under `secret`."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def sign(
    body: bytes,
    secret: str | bytes | Iterable[str | bytes],
    *,
    timestamp: int | None = None,
) -> str:
    """The `Marketplace-Signature` header value for `body` (one `v1` per secret)."""
    when = int(time.time()) if timestamp is None else int(timestamp)
    parts = [f"t={when}"]
    parts += [f"{SCHEME}={compute_signature(body, key, when)}" for key in _secrets(secret)]
    return ",".join(parts)


def parse_header(header: str | None) -> tuple[int, list[str]]:
    """Split `t=<unix>,v1=<hex>[,v1=<hex>...]` into the timestamp and the signatures."""
    if not header:
        raise MalformedSignature(f"the {SIGNATURE_HEADER} header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise MalformedSignature(f"malformed {SIGNATURE_HEADER} element: {item.strip()!r}")
        if key == "t":
            if not value.isdigit():
                raise MalformedSignature(f"the timestamp is not a unix time: {value!r}")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value.strip().lower())
        # Unknown schemes are ignored so that a later scheme can be added alongside v1.
    if timestamp is None:
        raise MalformedSignature(f"the {SIGNATURE_HEADER} header has no timestamp (t=)")
    if not signatures:
        raise MalformedSignature(f"the {SIGNATURE_HEADER} header has no {SCHEME} signature")
    return timestamp, signatures


def verify_signature(
    body: bytes,
    header: str | None,
    secret: str | bytes | Iterable[str | bytes],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check the header against the raw body; return the signed timestamp, or raise."""
    timestamp, signatures = parse_header(header)
    current = time.time() if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        raise TimestampOutOfRange(
            f"the signature's timestamp {timestamp} is more than {tolerance}s from now"
        )
    for key in _secrets(secret):
        expected = compute_signature(body, key, timestamp)
        # Check every candidate so the time taken does not depend on which one matched.
        matched = [hmac.compare_digest(expected, candidate) for candidate in signatures]
        if any(matched):
            return timestamp
    raise SignatureMismatch("the signature does not match the body")


def verify(
    body: bytes,
    header: str | None,
    secret: str | bytes | Iterable[str | bytes],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify a webhook and return its JSON body; raise `SignatureError` if it must be rejected."""
    verify_signature(body, header, secret, tolerance=tolerance, now=now)
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise SignatureError(f"the signed body is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise SignatureError("the signed body is not a JSON object")
    return event
