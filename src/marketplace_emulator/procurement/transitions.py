"""The transitions shared by the provider's calls, the customer's actions and the clock.

Activation, cancellation, plan changes, and the end of an offer's term: each changes the entitlement
under the backend's lock and queues the notification Google sends for it (reference 2.4). `_fire`
applies what the clock made due (store.py schedules it).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from marketplace_emulator.clock import rfc3339
from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.offers import offer_name
from marketplace_emulator.procurement.store import BackendCore


class Transitions(BackendCore):
    def _set_state(self, entitlement: r.Entitlement, state: str, when: datetime) -> None:
        """Every state change clears `messageToUser` (discovery document, Entitlement)."""
        entitlement.state = state
        entitlement.update_time = when
        entitlement.message_to_user = ""

    def _standard_offer(self, provider_id: str, service_name: str) -> str:
        return offer_name(provider_id, service_name, str(uuid.uuid4()), private=False)

    def _usage_billed(self, entitlement: r.Entitlement) -> bool:
        product = self._product(entitlement)
        spec = product.plans.get(entitlement.plan) if product else None
        return spec is not None and spec.usage_billed

    def _new_consumer(self) -> str:
        return f"project_number:{next(self._project_numbers)}"

    def _ensure_usage_id(self, entitlement: r.Entitlement) -> None:
        product = self._product(entitlement)
        spec = product.plans.get(entitlement.plan) if product else None
        if spec is not None and spec.usage_billed and not entitlement.usage_reporting_id:
            entitlement.usage_reporting_id = self._new_consumer()
            self._by_usage_id.add(
                entitlement.usage_reporting_id, (entitlement.provider, entitlement.id)
            )
            entitlement.consumer_project = (
                "projects/" + entitlement.usage_reporting_id.split(":")[1]
            )

    def _activate(self, entitlement: r.Entitlement, when: datetime) -> None:
        self._set_state(entitlement, r.ACTIVE, when)
        entitlement.activation_time = None
        entitlement.offer_end_time = entitlement.term_end(when)
        entitlement.start_period(when, entitlement.plan)
        self._ensure_usage_id(entitlement)
        self._emit("ENTITLEMENT_ACTIVE", entitlement)
        self._cancel_migrated(entitlement, when)

    def _cancel_migrated(self, entitlement: r.Entitlement, when: datetime) -> None:
        """A migration's source is cancelled (`migrated`) once this entitlement is active."""
        if not entitlement.migrated_from:
            return
        source_id = entitlement.migrated_from.rsplit("/", 1)[-1]
        source = self._entitlements.get((entitlement.provider, source_id))
        if source is not None and source.state != r.CANCELLED:
            self._touched.add((source.provider, source.id))
            self._cancel_now(source, when, "migrated")

    def _cancel_now(self, entitlement: r.Entitlement, when: datetime, reason: str) -> None:
        self._set_state(entitlement, r.CANCELLED, when)
        entitlement.cancellation_reason = reason
        self._clear_pending(entitlement)
        entitlement.activation_time = None
        entitlement.end_period(when)
        if entitlement.periods:
            entitlement.subscription_end_time = when
            if entitlement.offer_end_time is None or entitlement.offer_end_time > when:
                entitlement.offer_end_time = when
        else:  # cancelled before any offer started
            entitlement.offer_end_time = None
        self._emit("ENTITLEMENT_CANCELLED", entitlement)

    @staticmethod
    def _clear_pending(entitlement: r.Entitlement) -> None:
        entitlement.new_pending_plan = ""
        entitlement.pending_offer = ""
        entitlement.pending_offer_duration = ""
        entitlement.pending_offer_end = None
        entitlement.pending_auto_renew = True
        entitlement.pending_private = False

    def _change_plan_now(self, entitlement: r.Entitlement, when: datetime) -> None:
        """The pending plan takes effect; a new offer starts a new term."""
        entitlement.plan = entitlement.new_pending_plan
        new_offer = entitlement.pending_offer and entitlement.pending_offer != entitlement.offer
        if new_offer:
            self._switch_offer(
                entitlement,
                entitlement.pending_offer,
                entitlement.pending_offer_duration,
                entitlement.pending_offer_end,
                entitlement.pending_auto_renew,
                entitlement.pending_private,
            )
        self._clear_pending(entitlement)
        self._set_state(entitlement, r.ACTIVE, when)
        entitlement.start_period(when, entitlement.plan)
        self._ensure_usage_id(entitlement)
        if new_offer or entitlement.offer_term_ended:
            entitlement.offer_term_ended = False
            self._new_term(entitlement, when)
        self._emit("ENTITLEMENT_PLAN_CHANGED", entitlement, newPlan=entitlement.plan)

    @staticmethod
    def _switch_offer(
        entitlement: r.Entitlement,
        name: str,
        duration: str,
        end: datetime | None,
        auto_renew: bool,
        private: bool,
    ) -> None:
        entitlement.offer = name
        entitlement.offer_duration = duration
        entitlement.fixed_offer_end = end
        entitlement.auto_renew = auto_renew
        entitlement.private_offer = private
        entitlement.offer_history.append(name)

    def _new_term(self, entitlement: r.Entitlement, start: datetime) -> None:
        entitlement.offer_end_time = entitlement.term_end(start)
        entitlement.update_time = start

    def _end_offer(self, entitlement: r.Entitlement, when: datetime, cancel: bool) -> None:
        """The current offer ends: cancel, or carry on under a standard offer (a new term)."""
        entitlement.offer_end_time = when
        entitlement.update_time = when
        self._emit("ENTITLEMENT_OFFER_ENDED", entitlement, newOfferEndTime=rfc3339(when))
        if cancel:
            self._cancel_now(entitlement, when, "expired")
            return
        self._carry_on(entitlement, when)

    def _carry_on(self, entitlement: r.Entitlement, when: datetime) -> None:
        """After its offer ended, the entitlement goes on under a standard offer (a new term)."""
        standard = self._standard_offer(entitlement.provider, entitlement.service_name)
        self._switch_offer(entitlement, standard, "", None, True, False)
        entitlement.offer_term_ended = False
        self._new_term(entitlement, when)

    def _offer_term_over(self, entitlement: r.Entitlement, when: datetime) -> None:
        """The current offer's term ended and it does not renew (an end date, or no renewal).

        A usage-based plan carries on at list price under a standard offer; awaiting a plan-change
        approval, a usage-based private offer keeps its ACTUAL end as `offerEndTime` (in the past)
        until the change is decided (discovery document, `offerEndTime`). Otherwise the entitlement
        is cancelled (`expired`) unless an end-dated offer was set to carry on (`autoRenew`).
        """
        usage = self._usage_billed(entitlement)
        if (
            entitlement.state == r.PENDING_PLAN_CHANGE_APPROVAL
            and usage
            and entitlement.private_offer
        ):
            entitlement.offer_term_ended = True
            entitlement.offer_end_time = when
            entitlement.update_time = when
            self._emit("ENTITLEMENT_OFFER_ENDED", entitlement, newOfferEndTime=rfc3339(when))
            return
        carry_on = usage or (entitlement.fixed_offer_end is not None and entitlement.auto_renew)
        self._end_offer(entitlement, when, cancel=not carry_on)

    def _fire(self, entitlement: r.Entitlement, when: datetime) -> None:
        state = entitlement.state
        if state == r.ACTIVATION_REQUESTED:
            self._activate(entitlement, when)
        elif state == r.PENDING_CANCELLATION:
            self._cancel_now(entitlement, when, "user-cancelled")
        elif state == r.PENDING_PLAN_CHANGE:
            self._change_plan_now(entitlement, when)
            self._new_term(entitlement, when)
        elif (
            entitlement.fixed_offer_end is not None and entitlement.fixed_offer_end <= when
        ) or not entitlement.auto_renew:
            self._offer_term_over(entitlement, when)
        else:  # ACTIVE or awaiting a plan-change approval: the term renews
            self._new_term(entitlement, when)
            self._emit("ENTITLEMENT_RENEWED", entitlement)
