"""Ingestion's fast paths agree with the general code they shortcut, on generated inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from marketplace_saas.adapters.db.models import UsageRecord
from marketplace_saas.adapters.db.usage_store import sqlite_datetime
from marketplace_saas.domain.text import is_storable
from marketplace_saas.domain.time import _RFC3339, parse_rfc3339
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


@given(
    st.one_of(
        st.integers(min_value=10**40, max_value=10**4299),
        st.integers(min_value=-(10**4299), max_value=-(10**40)),
    )
)
def test_a_long_integer_is_refused_as_an_int_as_it_is_as_a_decimal(number: int) -> None:
    """`POST /v1/usage` reads an integer of 41 to 4300 digits as an int (it once made a Decimal
    of it): the refusal is the same."""
    assert _outcome(number) == _outcome(Decimal(number))
    assert _outcome(number) in ("value is too large", "value must not be negative")


def _general_rfc3339(value: str) -> datetime:
    """`parse_rfc3339` rewriting every form before `datetime.fromisoformat` (no fast path)."""
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    stamp, fraction, offset = match.groups()
    if offset is None:
        raise ValueError(f"RFC 3339 time without an offset: {value!r}")
    text = stamp + ("." + fraction[:6].ljust(6, "0") if fraction else "")
    text += "+00:00" if offset in "zZ" else offset
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"not a valid RFC 3339 time: {value!r}") from None


def _time_outcome(parse: object, value: str) -> tuple[object, ...]:
    try:
        moment = parse(value)  # type: ignore[operator]
    except ValueError as exc:
        return ("refused", str(exc))
    return (moment, repr(moment), moment.tzinfo is UTC, moment.fold)


def _two_digits(valid_below: int) -> st.SearchStrategy[str]:
    """Mostly a valid hour, minute or second; sometimes any two digits."""
    valid = st.integers(min_value=0, max_value=valid_below - 1)
    return st.one_of(valid, valid, valid, st.integers(min_value=0, max_value=99)).map(
        "{:02d}".format
    )


digits = "0123456789"
rfc3339_texts = st.builds(
    "{}{}-{}-{}{}{}:{}:{}{}{}{}".format,
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(["0001", "1970", "2025", "2028", "9999", "0000"]),
    st.sampled_from(["01", "02", "12", "13", "00"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t"]),
    _two_digits(24),
    _two_digits(60),
    _two_digits(60),
    st.one_of(st.just(""), st.text(alphabet=digits, min_size=1, max_size=10).map(".{}".format)),
    st.one_of(
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+14:00", "-14:00", "+24:00"]),
        st.builds("{}{}:{}".format, st.sampled_from("+-"), _two_digits(24), _two_digits(60)),
    ),
    st.sampled_from(["", " "]),
)


@settings(max_examples=500)
@given(rfc3339_texts)
def test_a_time_read_as_given_is_the_time_read_after_rewriting(value: str) -> None:
    """`parse_rfc3339` hands `fromisoformat` the text as given when it can: same time (same
    repr, UTC tzinfo, fold) or same refusal as the rewrite of every form."""
    assert _time_outcome(parse_rfc3339, value) == _time_outcome(_general_rfc3339, value)


def _fold(moment: datetime) -> datetime:
    return moment.replace(fold=1)


@given(moments | moments.map(_fold) | utc_moments.map(_fold))
def test_the_hour_of_a_utc_time_is_the_hour_converted_the_general_way(moment: datetime) -> None:
    """`floor_hour`'s UTC shortcut gives what converting and replacing gives."""
    general = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hour = floor_hour(moment)
    assert (hour, repr(hour), hour.tzinfo, hour.fold) == (
        general,
        repr(general),
        general.tzinfo,
        general.fold,
    )


@given(st.text(alphabet=st.sampled_from(["a", "-", "\x00", "\x7f", "é", "\ud800", "\udfff", "😀"])))
def test_ascii_text_is_storable_as_the_utf8_check_says(value: str) -> None:
    """`is_storable`'s ASCII shortcut agrees with encoding the text."""
    try:
        value.encode("utf-8")
        encodes = True
    except UnicodeEncodeError:
        encodes = False
    assert is_storable(value) == (encodes and "\x00" not in value)


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
