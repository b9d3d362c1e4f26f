"""The one grammar of usage values and times (docs/security.md, "Usage values"; issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketplace_saas.domain.time import parse_rfc3339
from marketplace_saas.domain.usage import UsageError, parse_time, parse_value

NOW = datetime(2025, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.500000000000", Decimal("1.5")),
        ("1e2", Decimal(100)),
        ("0.000000001", Decimal("0.000000001")),
        ("0e-999999999", Decimal(0)),
        (Decimal("1E+5"), Decimal(100000)),
        ("9" * 27, Decimal("9" * 27)),
    ],
)
def test_values_in_the_grammar_are_kept_exactly(raw: object, expected: Decimal) -> None:
    value = parse_value(raw)
    assert value == expected
    assert value.as_tuple().exponent >= -9  # type: ignore[operator]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("1_000", "not a number"),
        ("\u0663", "not a number"),
        (" 3", "not a number"),
        ("+3", "not a number"),
        ("NaN", "not a number"),
        ("0x10", "not a number"),
        ("1e999999999", "too large"),
        (Decimal("1e999999999"), "too large"),
        ("1" + "0" * 28, "too large"),
        ("1e-999999999", "decimal places"),
        (Decimal("1e-999999999"), "decimal places"),
        ("0.1234567891", "decimal places"),
        ("-1e-999999999", "negative"),
    ],
)
def test_values_outside_the_grammar_or_bounds_are_refused_without_arithmetic(
    raw: object, words: str
) -> None:
    """No Overflow or InvalidOperation escapes: each is a UsageError with its reason."""
    with pytest.raises(UsageError, match=words):
        parse_value(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2025-01-31T12:00:00",
        "2025-01-31 12:00:00Z",
        "2025-W05-1T12:00:00Z",
        "\u0662\u0660\u0662\u0665-01-31T12:00:00Z",
    ],
)
def test_times_out_of_range_or_outside_rfc3339_are_refused(raw: str) -> None:
    with pytest.raises(UsageError, match="RFC 3339"):
        parse_time(raw, now=NOW, max_skew=timedelta(minutes=5))
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339(raw)


def test_nanosecond_times_with_offsets_are_read_as_google_writes_them() -> None:
    assert parse_rfc3339("2025-01-31t13:00:00.123456789+01:00") == datetime(
        2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC
    )
