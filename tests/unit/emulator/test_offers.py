"""Offer terms: ISO 8601 durations added on the calendar, and which offers are private."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplace_emulator.procurement.offers import (
    OfferTerms,
    add_duration,
    check_duration,
    offer_name,
)


@pytest.mark.parametrize(
    ("start", "duration", "end"),
    [
        (datetime(2030, 1, 31, 12, tzinfo=UTC), "P1M", datetime(2030, 2, 28, 12, tzinfo=UTC)),
        (datetime(2032, 1, 31, tzinfo=UTC), "P1M", datetime(2032, 2, 29, tzinfo=UTC)),
        (datetime(2030, 11, 15, tzinfo=UTC), "P1Y6M", datetime(2032, 5, 15, tzinfo=UTC)),
        (datetime(2032, 2, 29, tzinfo=UTC), "P1Y", datetime(2033, 2, 28, tzinfo=UTC)),
        (datetime(2030, 1, 1, tzinfo=UTC), "P2W3D", datetime(2030, 1, 18, tzinfo=UTC)),
    ],
)
def test_durations_add_months_and_years_on_the_calendar(
    start: datetime, duration: str, end: datetime
) -> None:
    """A month from 31 January is the end of February; a year from 29 February is 28 February."""
    assert add_duration(start, duration) == end


@pytest.mark.parametrize("text", ["", "P", "P0D", "1Y", "P1.5Y", "PT1H", "P1Y2", "p1y"])
def test_only_date_durations_of_at_least_a_day_are_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        check_duration(text)


def test_offers_are_private_when_named_so_or_given_their_own_terms() -> None:
    """A standardOffers name or no terms: a standard offer; dates or a duration: a private one."""
    standard = offer_name("DEMO-x", "svc.example.com", "o-1", private=False)
    assert "/standardOffers/o-1" in standard
    assert not OfferTerms(name=standard).is_private
    assert OfferTerms(name=offer_name("DEMO-x", "svc", "o-2", private=True)).is_private
    assert not OfferTerms().is_private
    assert OfferTerms(duration="P1Y").is_private
    assert not OfferTerms(duration="P1Y", private=False).is_private
