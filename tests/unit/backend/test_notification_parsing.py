"""Parsing procurement notifications (reference sections 2.2 and 2.3): pure, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from marketplace_saas.domain.notifications import (
    MAX_NOTIFICATION_BYTES,
    InvalidNotification,
    digest_event_id,
    parse_notification,
)
from marketplace_saas.domain.time import parse_rfc3339

PROVIDER = "DEMO-unit"


def _parse(payload: object) -> object:
    return parse_notification(json.dumps(payload).encode(), provider_id=PROVIDER)


def test_an_entitlement_notification_is_parsed_with_its_update_time() -> None:
    note = parse_notification(
        json.dumps(
            {
                "eventId": "e-1",
                "eventType": "ENTITLEMENT_PLAN_CHANGED",
                "providerId": PROVIDER,
                "entitlement": {"id": "ent-1", "updateTime": "2026-01-02T03:04:05.123456789Z"},
            }
        ).encode(),
        provider_id=PROVIDER,
    )
    assert (note.event_id, note.event_type, note.kind, note.subject_id) == (
        "e-1",
        "ENTITLEMENT_PLAN_CHANGED",
        "entitlement",
        "ent-1",
    )
    assert note.update_time == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_an_account_notification_may_lack_event_type_and_update_time() -> None:
    """Google's documented account payload carries no eventType."""
    note = parse_notification(
        b'{"eventId": "e-2", "providerId": "DEMO-unit", "account": {"id": "acc-1"}}',
        provider_id=PROVIDER,
    )
    assert (note.kind, note.event_type, note.update_time) == ("account", None, None)


@pytest.mark.parametrize(
    ("payload", "reason", "claimed"),
    [
        ({"providerId": PROVIDER, "account": {"id": "a"}}, "no eventId", None),
        ({"eventId": "x", "account": {"id": "a"}}, "no providerId", "x"),
        ({"eventId": "x", "providerId": "OTHER", "account": {"id": "a"}}, "not ours", "x"),
        ({"eventId": "x", "providerId": PROVIDER}, "exactly one of", "x"),
        (
            {"eventId": "x", "providerId": PROVIDER, "account": {"id": "a"}, "entitlement": {}},
            "exactly one of",
            "x",
        ),
        ({"eventId": "x", "providerId": PROVIDER, "account": "a"}, "not an object", "x"),
        ({"eventId": "x", "providerId": PROVIDER, "entitlement": {"id": " "}}, "has no id", "x"),
        (
            {"eventId": "x", "providerId": PROVIDER, "entitlement": {"id": "providers/p/e/1"}},
            "not a bare id",
            "x",
        ),
        ({"eventId": "x" * 201, "providerId": PROVIDER, "account": {"id": "a"}}, "too long", None),
        (
            {"eventId": "x", "providerId": PROVIDER, "account": {"id": "a", "updateTime": 5}},
            "RFC 3339",
            "x",
        ),
    ],
)
def test_messages_that_can_never_be_valid_say_why(
    payload: object, reason: str, claimed: str | None
) -> None:
    with pytest.raises(InvalidNotification, match=reason) as caught:
        _parse(payload)
    assert caught.value.event_id == claimed


def test_non_json_non_objects_and_oversized_messages_are_invalid() -> None:
    for data, reason in [
        (b"\x00\xff", "not UTF-8 JSON"),
        (b"{", "not UTF-8 JSON"),
        (b'"text"', "not an object"),
        (b" " * (MAX_NOTIFICATION_BYTES + 1), "over the 65536-byte limit"),
    ]:
        with pytest.raises(InvalidNotification, match=reason):
            parse_notification(data, provider_id=PROVIDER)


def test_the_inbox_key_of_an_invalid_message_is_a_stable_digest() -> None:
    assert digest_event_id(b"abc") == digest_event_id(b"abc")
    assert digest_event_id(b"abc") != digest_event_id(b"abd")
    assert digest_event_id(b"abc").startswith("invalid:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.5Z", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_as_google_writes_them(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["", "2026-01-02", "2026-01-02T03:04:05", "soon"])
def test_times_without_a_zone_or_a_time_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)
