"""A procurement notification, parsed and validated (reference sections 2.2 and 2.3).

`parse_notification(data, provider_id=...)` returns a `Notification` or raises
`InvalidNotification`, which carries the reason and whatever could be read (the inbox keeps a row
for it). Account messages may lack `eventType`: the kind is decided by the `account` or
`entitlement` key, as in Google's codelab.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from marketplace_saas.domain.text import is_storable
from marketplace_saas.domain.time import parse_rfc3339

MAX_NOTIFICATION_BYTES = 64 * 1024
MAX_ID_LENGTH = 200

Kind = Literal["account", "entitlement"]


@dataclass(frozen=True)
class Notification:
    event_id: str
    event_type: str | None
    provider_id: str
    kind: Kind
    subject_id: str
    update_time: datetime | None
    body: dict[str, Any] = field(default_factory=dict)  # the account or entitlement object


class InvalidNotification(ValueError):
    """A message that will never become valid: the reason, and what could be read of it.

    `event_id` is the eventId the message claims (None when it has none); the inbox keys invalid
    messages on `digest_event_id(data)` so that they can never shadow a valid message's eventId.
    """

    def __init__(
        self,
        reason: str,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        provider_id: str | None = None,
        kind: str | None = None,
        subject_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.event_type = event_type
        self.provider_id = provider_id
        self.kind = kind
        self.subject_id = subject_id


def digest_event_id(data: bytes) -> str:
    """The inbox key of a message without a usable eventId: a digest of its bytes."""
    return "invalid:" + hashlib.sha256(data).hexdigest()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _fits(value: str | None) -> bool:
    """Short enough for its column, and text any database can store."""
    return value is None or (len(value) <= MAX_ID_LENGTH and is_storable(value))


def parse_notification(data: bytes, *, provider_id: str) -> Notification:
    """Parse the UTF-8 JSON payload of a Pub/Sub message for `provider_id`."""
    if len(data) > MAX_NOTIFICATION_BYTES:
        raise InvalidNotification(
            f"message is {len(data)} bytes, over the {MAX_NOTIFICATION_BYTES}-byte limit"
        )
    try:
        payload: Any = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise InvalidNotification("message is not UTF-8 JSON: it nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidNotification(f"message is not UTF-8 JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidNotification("message is JSON but not an object")

    event_id = _text(payload.get("eventId"))
    event_type = _text(payload.get("eventType"))
    sender = _text(payload.get("providerId"))
    seen: dict[str, Any] = {
        "event_id": event_id if _fits(event_id) else None,
        "event_type": event_type if _fits(event_type) else None,
        "provider_id": sender if _fits(sender) else None,
    }
    if event_id is None:
        raise InvalidNotification("message has no eventId", **seen)
    if not _fits(event_id):
        raise InvalidNotification("eventId is too long or not valid text", **seen)
    if not _fits(event_type):
        raise InvalidNotification("eventType is too long or not valid text", **seen)
    if sender is None:
        raise InvalidNotification("message has no providerId", **seen)
    if sender != provider_id:
        raise InvalidNotification(
            f"message is for provider {sender!r}, not ours ({provider_id!r})", **seen
        )

    kinds = [k for k in ("account", "entitlement") if k in payload]
    if len(kinds) != 1:
        raise InvalidNotification(
            "message must carry exactly one of 'account' and 'entitlement'", **seen
        )
    kind: Kind = "account" if kinds[0] == "account" else "entitlement"
    body = payload[kind]
    if not isinstance(body, dict):
        raise InvalidNotification(f"'{kind}' is not an object", kind=kind, **seen)
    subject_id = _text(body.get("id"))
    if subject_id is None:
        raise InvalidNotification(f"'{kind}' has no id", kind=kind, **seen)
    if not _fits(subject_id) or "/" in subject_id:
        raise InvalidNotification(f"'{kind}.id' is not a bare id", kind=kind, **seen)

    update_time: datetime | None = None
    raw_time = body.get("updateTime")
    if raw_time is not None:
        try:
            update_time = parse_rfc3339(str(raw_time))
        except ValueError as exc:
            raise InvalidNotification(
                f"'{kind}.updateTime' is not an RFC 3339 time: {raw_time!r}",
                kind=kind,
                subject_id=subject_id,
                **seen,
            ) from exc

    return Notification(
        event_id=event_id,
        event_type=event_type,
        provider_id=sender,
        kind=kind,
        subject_id=subject_id,
        update_time=update_time,
        body=body,
    )
