"""RFC 3339 times as Google writes them (`2025-07-16T13:13:57.948233Z`, nanoseconds allowed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"\.(\d+)")


def format_rfc3339(moment: datetime) -> str:
    """`2025-07-16T13:13:57.948233Z`: an aware time in UTC with a `Z` (a naive one as it is)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def optional_rfc3339(moment: datetime | None) -> str | None:
    """`format_rfc3339`, None for None (absent times of a record)."""
    return format_rfc3339(moment) if moment is not None else None


def parse_rfc3339(value: str) -> datetime:
    """An aware UTC datetime; fractions beyond microseconds are cut; offsets are honoured."""
    text = value.strip()
    if not text or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 time without an offset: {value!r}")
    return parsed.astimezone(UTC)


def optional_time(value: object) -> datetime | None:
    """`parse_rfc3339` for optional fields of an API resource; junk reads as absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None
