"""Usage windows, operation ids and value parsing: the pure rules of metering."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketplace_saas.domain.usage import (
    PlanChange,
    Timeline,
    UsageError,
    Window,
    operation_id,
    parse_labels,
    parse_time,
    parse_value,
    split_integer,
    user_labels,
)

T = datetime(2025, 3, 1, 10, 17, tzinfo=UTC)
H = timedelta(hours=1)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, 1, hour, minute, tzinfo=UTC)


def test_first_window_starts_at_activation_and_ends_at_the_next_hour() -> None:
    timeline = Timeline.build(active_since=T, cancelled_at=None, current_plan="basic")
    assert timeline.window_at(T) == Window(T, at(11), "basic")
    assert timeline.window_at(at(12, 30)) == Window(at(12), at(13), "basic")


def test_windows_are_contiguous_hourly_and_stop_before_an_unfinished_hour() -> None:
    timeline = Timeline.build(active_since=T, cancelled_at=None, current_plan="basic")
    windows = list(timeline.windows(T, at(13, 59)))
    assert [(w.start, w.end) for w in windows] == [(T, at(11)), (at(11), at(12)), (at(12), at(13))]


def test_a_plan_change_splits_the_window_at_the_moment_it_took_effect() -> None:
    timeline = Timeline.build(
        active_since=T,
        cancelled_at=None,
        current_plan="pro",
        changes=[PlanChange("pro", at(12, 40), "basic")],
    )
    windows = list(timeline.windows(T, at(14)))
    assert windows == [
        Window(T, at(11), "basic"),
        Window(at(11), at(12), "basic"),
        Window(at(12), at(12, 40), "basic"),
        Window(at(12, 40), at(13), "pro"),
        Window(at(13), at(14), "pro"),
    ]
    assert timeline.plan_at(at(12, 39)) == "basic"
    assert timeline.plan_at(at(12, 40)) == "pro"


def test_the_last_window_ends_at_cancellation_and_nothing_follows() -> None:
    timeline = Timeline.build(active_since=T, cancelled_at=at(12, 5), current_plan="basic")
    windows = list(timeline.windows(T, at(20)))
    assert windows[-1] == Window(at(12), at(12, 5), "basic")
    assert not timeline.is_active_at(at(12, 5))
    assert timeline.is_active_at(at(12, 4))
    assert not timeline.is_active_at(T - timedelta(seconds=1))


def test_history_at_activation_sets_the_first_plan_and_later_changes_use_previous_plan() -> None:
    at_activation = Timeline.build(
        active_since=T, cancelled_at=None, current_plan="pro", changes=[PlanChange("basic", T)]
    )
    assert at_activation.plan_at(T) == "basic"
    only_later = Timeline.build(
        active_since=T,
        cancelled_at=None,
        current_plan="pro",
        changes=[PlanChange("pro", at(15), "basic")],
    )
    assert only_later.plan_at(T) == "basic"
    assert only_later.plan_at(at(15)) == "pro"


def test_operation_id_is_a_deterministic_uuid5_per_entitlement_window_and_plan() -> None:
    first = operation_id("ent-1", at(10), "basic")
    assert first == operation_id("ent-1", at(10), "basic")
    assert uuid.UUID(first).version == 5
    assert first != operation_id("ent-1", at(10), "pro")
    assert first != operation_id("ent-1", at(11), "basic")
    assert first != operation_id("ent-2", at(10), "basic")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(3, Decimal(3)), (Decimal("1.25"), Decimal("1.25")), ("7", Decimal(7)), (0, Decimal(0))],
)
def test_values_accept_integers_decimals_and_numeric_strings(
    raw: object, expected: Decimal
) -> None:
    assert parse_value(raw) == expected


@pytest.mark.parametrize(
    "raw", [-1, "abc", None, True, float("nan"), float("inf"), Decimal("NaN"), "1e40", [1]]
)
def test_values_refuse_negative_non_numeric_and_non_finite(raw: object) -> None:
    with pytest.raises(UsageError):
        parse_value(raw)


def test_values_refuse_more_than_nine_decimal_places() -> None:
    assert parse_value("0.123456789") == Decimal("0.123456789")
    with pytest.raises(UsageError, match="decimal places"):
        parse_value("0.1234567891")


def test_time_defaults_to_now_and_refuses_the_future_beyond_the_skew() -> None:
    now = at(12)
    skew = timedelta(minutes=5)
    assert parse_time(None, now=now, max_skew=skew) == now
    assert parse_time("2025-03-01T12:04:00Z", now=now, max_skew=skew) == at(12, 4)
    assert parse_time("2025-03-01T13:00:00+01:00", now=now, max_skew=skew) == at(12)
    with pytest.raises(UsageError, match="future"):
        parse_time("2025-03-01T12:06:00Z", now=now, max_skew=skew)
    for bad in ("2025-03-01T12:00:00", "yesterday", 5):
        with pytest.raises(UsageError):
            parse_time(bad, now=now, max_skew=skew)


def test_labels_follow_resource_manager_syntax() -> None:
    assert parse_labels({"resource_name": "db-1", "env": "prod"}) == {
        "resource_name": "db-1",
        "env": "prod",
    }
    for bad in ({"Env": "x"}, {"env": "Prod"}, {"env": 3}, ["x"], {"1x": "y"}):
        with pytest.raises(UsageError):
            parse_labels(bad)


def test_user_labels_keep_what_every_record_agrees_on_under_the_reserved_keys() -> None:
    labels = user_labels(
        [
            {"resource_name": "db-1", "container_name": "prod", "env": "a"},
            {"resource_name": "db-1", "container_name": "prod", "env": "b"},
        ]
    )
    assert labels == {
        "cloudmarketplace.googleapis.com/container_name": "prod",
        "cloudmarketplace.googleapis.com/resource_name": "db-1",
    }
    assert user_labels([]) == {}


def test_int64_amounts_report_the_whole_part_and_carry_the_fraction() -> None:
    assert split_integer(Decimal("2.75"), final=False) == (2, Decimal("0.75"))
    assert split_integer(Decimal("0.5"), final=True) == (1, Decimal(0))
    assert split_integer(Decimal("0.49"), final=True) == (0, Decimal(0))
