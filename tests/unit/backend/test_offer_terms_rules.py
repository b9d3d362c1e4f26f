"""An order's offer terms read from the Procurement API's resource (`domain.offers`)."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace_saas.domain.offers import OfferTerms

PRIVATE = "projects/1/services/s.example.com/privateOffers/acme"
STANDARD = "projects/1/services/s.example.com/standardOffers/std"
END = "2027-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("resource", "renews"),
    [
        ({"state": "ENTITLEMENT_ACTIVE", "offer": PRIVATE, "offerDuration": "P1Y"}, True),
        ({"state": "ENTITLEMENT_ACTIVE", "offer": PRIVATE, "offerEndTime": END}, False),
        ({"state": "ENTITLEMENT_PENDING_PLAN_CHANGE", "offerDuration": "P1M"}, True),
        ({"state": "ENTITLEMENT_PENDING_CANCELLATION", "offerDuration": "P1M"}, False),
        ({"state": "ENTITLEMENT_CANCELLED", "offerDuration": "P1M"}, False),
        ({"state": "ENTITLEMENT_ACTIVATION_REQUESTED", "offerDuration": "P1M"}, None),
        ({"state": "ENTITLEMENT_SUSPENDED", "offerDuration": "P1M"}, None),
    ],
)
def test_renewal_follows_googles_state_descriptions_and_the_offers_end(
    resource: dict[str, Any], renews: bool | None
) -> None:
    """ACTIVE with a duration "will renew"; pending cancellation, an end date or cancelled: no;
    waiting for activation or suspended: unknown."""
    assert OfferTerms.of(resource).renews is renews


def test_a_deleted_order_does_not_renew_whatever_its_last_state() -> None:
    """`DELETED` (the API answered 404) is given by the caller and wins over the stored state."""
    resource = {"state": "ENTITLEMENT_ACTIVE", "offerDuration": "P1M"}
    assert OfferTerms.of(resource, "DELETED").renews is False


@pytest.mark.parametrize("spelling", ["newPendingOfferDuration", "newOfferDuration"])
def test_a_pending_offers_duration_is_read_under_either_spelling(spelling: str) -> None:
    """Google's pages name both spellings of the pending offer's duration."""
    terms = OfferTerms.of(
        {
            "state": "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
            "offer": STANDARD,
            "newPendingPlan": "pro",
            "newPendingOffer": PRIVATE,
            spelling: "P2Y",
        }
    )
    assert (terms.private, terms.pending_offer, terms.pending_duration) == (False, PRIVATE, "P2Y")
    assert ("Pending offer duration", "P2Y") in terms.lines()


def test_a_migrated_order_and_its_reason() -> None:
    """`cancellationReason` `migrated` marks the order as migrated; other reasons do not."""
    migrated = OfferTerms.of({"state": "ENTITLEMENT_CANCELLED", "cancellationReason": "migrated"})
    assert (migrated.migrated, migrated.cancellation_reason) == (True, "migrated")
    disabled = {"state": "ENTITLEMENT_CANCELLED", "cancellationReason": "billing-disabled"}
    assert OfferTerms.of(disabled).migrated is False
    assert OfferTerms.of(None) == OfferTerms()
