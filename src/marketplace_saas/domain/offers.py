"""An entitlement's offer terms, read from the Procurement API's resource as we last saw it.

What a provider selling through private offers needs to see of an order: which offer, whether it
is private, its duration (`offerDuration`) or its end (`offerEndTime`), whether it renews, the
terms of a pending plan change (`newPendingOffer`, `newPendingOfferDuration` or Google's older
spelling `newOfferDuration`, `newOfferEndTime`, `newOfferStartTime`), the cancellation reason and
whether the order was migrated. Every field comes from the stored resource (`entitlements.raw`),
so nothing is kept twice.

**Renewal.** Google's Entitlement has no auto-renew field. Google's state descriptions say an
ACTIVE entitlement "will renew" and one PENDING_CANCELLATION "won't renew"; an offer with an end
date instead of a duration ends then. `renews` follows those words: true for an order in service
whose offer has a duration, false for one pending cancellation, one whose offer has an end date,
or one cancelled; None while it waits for activation or is suspended. A private offer with a
duration that does not renew looks the same as one that does until Google sends
`ENTITLEMENT_OFFER_ENDED`.
Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PRIVATE_OFFER_MARK = "/privateOffers/"
MIGRATED = "migrated"
_IN_SERVICE = frozenset(
    {
        "ENTITLEMENT_ACTIVE",
        "ENTITLEMENT_PENDING_PLAN_CHANGE",
        "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
    }
)
_NOT_RENEWING = frozenset({"ENTITLEMENT_PENDING_CANCELLATION", "ENTITLEMENT_CANCELLED", "DELETED"})


def _text(resource: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = resource.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True)
class OfferTerms:
    """The offer terms of one entitlement (times as the API's RFC 3339 strings)."""

    offer: str | None = None
    private: bool = False
    duration: str | None = None
    end_time: str | None = None
    renews: bool | None = None
    quote_external_name: str | None = None
    pending_plan: str | None = None
    pending_offer: str | None = None
    pending_duration: str | None = None
    pending_end_time: str | None = None
    pending_start_time: str | None = None
    cancellation_reason: str | None = None
    migrated: bool = False

    @classmethod
    def of(cls, resource: dict[str, Any] | None, state: str | None = None) -> OfferTerms:
        """The terms in `resource` (an entitlement as `entitlements.get` returns it)."""
        resource = resource if isinstance(resource, dict) else {}
        state = state or _text(resource, "state")
        offer = _text(resource, "offer")
        duration = _text(resource, "offerDuration")
        end_time = _text(resource, "offerEndTime")
        reason = _text(resource, "cancellationReason")
        renews: bool | None = None
        if state in _NOT_RENEWING:
            renews = False
        elif state in _IN_SERVICE:
            renews = duration is not None or end_time is None
        return cls(
            offer=offer,
            private=offer is not None and PRIVATE_OFFER_MARK in offer,
            duration=duration,
            end_time=end_time,
            renews=renews,
            quote_external_name=_text(resource, "quoteExternalName"),
            pending_plan=_text(resource, "newPendingPlan"),
            pending_offer=_text(resource, "newPendingOffer"),
            pending_duration=_text(resource, "newPendingOfferDuration", "newOfferDuration"),
            pending_end_time=_text(resource, "newOfferEndTime"),
            pending_start_time=_text(resource, "newOfferStartTime"),
            cancellation_reason=reason,
            migrated=reason == MIGRATED,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[tuple[str, str]]:
        """(label, text) pairs for people: the CLI and the console show these."""
        renewal = {True: "renews at the term's end", False: "does not renew", None: "-"}
        rows = [
            ("Offer", self.offer or "-"),
            ("Offer kind", "private" if self.private else "standard"),
            ("Offer duration", self.duration or "-"),
            ("Offer ends", self.end_time or "-"),
            ("Renewal", renewal[self.renews]),
        ]
        if self.quote_external_name:
            rows.append(("Quote", self.quote_external_name))
        if self.pending_plan or self.pending_offer:
            rows += [
                ("Pending plan", self.pending_plan or "-"),
                ("Pending offer", self.pending_offer or "-"),
                ("Pending offer duration", self.pending_duration or "-"),
                ("Pending offer ends", self.pending_end_time or "-"),
                ("Pending offer starts", self.pending_start_time or "-"),
            ]
        if self.cancellation_reason:
            rows.append(("Cancellation reason", self.cancellation_reason))
        rows.append(("Migrated", "yes" if self.migrated else "no"))
        return rows
