"""RFC 3339 times as Google writes them (`2025-07-16T13:13:57.948233Z`, nanoseconds allowed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# RFC 3339's date-time (section 5.6), ASCII digits only; the offset is required.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def format_rfc3339(moment: datetime) -> str:
    """`2025-07-16T13:13:57.948233Z`: an aware time in UTC with a `Z` (a naive one as it is)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def optional_rfc3339(moment: datetime | None) -> str | None:
    """`format_rfc3339`, None for None (absent times of a record)."""
    return format_rfc3339(moment) if moment is not None else None


def parse_rfc3339(value: str) -> datetime:
    """An aware UTC datetime; fractions beyond microseconds are cut; offsets are honoured.

    ValueError for anything else: another format, no offset, an impossible date, or a time whose
    offset takes it outside the years 1 to 9999 in UTC (`0001-01-01T00:00:00+14:00`).
    """
    text = value.strip()
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    stamp, fraction, offset = match.groups()
    if offset is None:
        raise ValueError(f"RFC 3339 time without an offset: {value!r}")
    if stamp[10] != "T" or offset == "z" or (fraction and len(fraction) > 6):
        # Forms `datetime.fromisoformat` does not read as they are: rewritten to one it reads
        # (it takes `T`, `Z` and up to 6 fraction digits, padding fewer, as the rewrite does).
        text = stamp + ("." + fraction[:6].ljust(6, "0") if fraction else "")
        text += "+00:00" if offset in "zZ" else offset
    try:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo is UTC else moment.astimezone(UTC)  # UTC: the usual case
    except (ValueError, OverflowError):
        raise ValueError(f"not a valid RFC 3339 time: {value!r}") from None


def optional_time(value: object) -> datetime | None:
    """`parse_rfc3339` for optional fields of an API resource; junk reads as absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None
