"""Offers: the terms a purchase or a plan change accepts, their durations and their names.

An offer has either a duration (ISO 8601, `P1Y`, `P1Y6M`, `P30D`) or a fixed end date, may start in
the future, and renews at the end of its term unless `auto_renew` is false. A standard (public)
offer without a duration uses the product's `termDays`. Offer names follow the discovery document:
`projects/{project}/services/{service}/privateOffers/{offer}` or `.../standardOffers/{offer}`.
"""

from __future__ import annotations

import calendar
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

_DURATION = re.compile(r"P(?:(\d{1,3})Y)?(?:(\d{1,4})M)?(?:(\d{1,3})W)?(?:(\d{1,5})D)?")


def check_duration(text: str) -> str:
    """`text` if it is an ISO 8601 date duration of at least one day (`P1Y6M`), else ValueError."""
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()) or not any(int(g or 0) for g in match.groups()):
        raise ValueError(f"not an ISO 8601 duration such as P1Y, P1Y6M or P30D: {text!r}")
    return text


def add_duration(start: datetime, text: str) -> datetime:
    """`start` plus a date duration, months added on the calendar (31 Jan + P1M = 28/29 Feb)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    total = start.month - 1 + months + 12 * years
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day) + timedelta(weeks=weeks, days=days)


def iso_duration(days: int) -> str:
    """A product term in Google's style: years or months when whole, else days."""
    if days % 365 == 0:
        return f"P{days // 365}Y"
    if days % 30 == 0:
        return f"P{days // 30}M"
    return f"P{days}D"


def project_number(provider_id: str) -> int:
    """A stable 12-digit project number standing for the provider's project in offer names."""
    return zlib.crc32(provider_id.encode()) % 900_000_000_000 + 100_000_000_000


def offer_name(provider_id: str, service_name: str, offer_id: str, private: bool) -> str:
    kind = "privateOffers" if private else "standardOffers"
    return f"projects/{project_number(provider_id)}/services/{service_name}/{kind}/{offer_id}"


@dataclass(frozen=True)
class OfferTerms:
    """The offer a purchase (or a plan change) accepts.

    `name` empty: a private offer is named when a date or a duration is given, else the product's
    standard offer. `duration` empty: the product's term (`termDays`), unless `end_time` is set.
    """

    name: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: str = ""
    auto_renew: bool = True
    quote: str = ""
    benefit_ids: tuple[str, ...] = ()
    private: bool | None = None  # None: private when named so, or when it has its own terms

    @property
    def is_private(self) -> bool:
        if self.private is not None:
            return self.private
        if self.name:
            return "/privateOffers/" in self.name
        return bool(self.start_time or self.end_time or self.duration)
