"""Ingestion's fast paths agree with the general code they shortcut, on generated inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from marketplace_saas.adapters.db.models import UsageRecord
from marketplace_saas.adapters.db.usage_store import sqlite_datetime
from marketplace_saas.domain.usage import (
    HOUR,
    Timeline,
    UsageError,
    Window,
    floor_hour,
    parse_labels,
    parse_value,
)

offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)
utc_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments)
def test_sqlite_datetime_text_is_what_sqlalchemy_stores(moment: datetime) -> None:
    """The SQLite insert's own datetime text equals the UtcDateTime column's bind processor."""
    dialect = sqlite.dialect()
    column = UsageRecord.__table__.c.time  # type: ignore[attr-defined]
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert sqlite_datetime(moment) == process(moment)


def _outcome(raw: object) -> Decimal | str:
    try:
        return parse_value(raw)
    except UsageError as exc:
        return str(exc)


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_an_integer_value_is_parsed_as_its_decimal_text_is(number: int) -> None:
    """The integer fast path gives the value, or the refusal, the general path gives."""
    assert _outcome(number) == _outcome(str(number))
    assert _outcome(number) == _outcome(Decimal(number))


def _general_window_at(timeline: Timeline, moment: datetime) -> Window:
    """`Timeline.window_at` as it is for any number of plan periods (no fast path)."""
    start = max(floor_hour(moment), timeline.active_since)
    end = floor_hour(moment) + HOUR
    for change, _plan in timeline.periods[1:]:
        if change <= moment:
            start = max(start, change)
        elif change < end:
            end = change
            break
    if timeline.cancelled_at is not None:
        end = min(end, timeline.cancelled_at)
    return Window(start, end, timeline.plan_at(moment))


@given(
    utc_moments,
    st.one_of(st.none(), st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(3))),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_the_window_of_a_timeline_without_plan_change_is_the_general_one(
    since: datetime, lifetime: timedelta | None, offset: timedelta
) -> None:
    cancelled = None if lifetime is None else since + lifetime
    timeline = Timeline.build(active_since=since, cancelled_at=cancelled, current_plan="basic")
    moment = since + (offset if lifetime is None else min(offset, lifetime / 2))
    assert timeline.is_active_at(moment)
    assert timeline.window_at(moment) == _general_window_at(timeline, moment)


labels = st.dictionaries(
    st.text(alphabet="abcXY_-1 ", min_size=0, max_size=5),
    st.one_of(st.text(alphabet="ab1_-Z ", max_size=5), st.integers(), st.none()),
    max_size=3,
)


def _labels_outcome(raw: object) -> dict[str, str] | str:
    try:
        return parse_labels(raw)
    except UsageError as exc:
        return str(exc)


@given(st.lists(labels, min_size=1, max_size=5))
def test_labels_found_valid_once_are_judged_the_same_every_later_time(
    label_sets: list[dict[str, object]],
) -> None:
    """The memo of valid labels changes no outcome, whatever was parsed before."""
    first = [_labels_outcome(raw) for raw in label_sets]
    again = [_labels_outcome(raw) for raw in reversed(label_sets)]
    assert again == list(reversed(first))
    for raw, outcome in zip(label_sets, first, strict=True):
        valid = all(
            isinstance(v, str)
            and k[:1] in ("a", "b", "c")
            and set(k) <= set("abc_-1")
            and set(v) <= set("ab1_-")
            for k, v in raw.items()
        )
        assert isinstance(outcome, dict) == valid
