"""Simulated customer actions: what a buyer does in the Marketplace UI, and what Google does next.

Each action changes state and queues the notification Google sends for it (reference 2.4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketplace_emulator.catalog import Product
from marketplace_emulator.clock import rfc3339
from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.exceptions import FailedPrecondition, InvalidArgument
from marketplace_emulator.procurement.offers import OfferTerms, offer_name
from marketplace_emulator.procurement.store import snapshot
from marketplace_emulator.procurement.transitions import Transitions

__all__ = ["CustomerActions", "OfferTerms", "PurchaseData", "snapshot_account"]


@dataclass(frozen=True)
class PurchaseData:
    """What the customer's purchase carries besides the plan and the offer."""

    input_properties: dict[str, Any] = field(default_factory=dict)
    account_input_properties: dict[str, Any] = field(default_factory=dict)
    reseller_parent_billing_account: str = ""
    migrated_from: str = ""


class CustomerActions(Transitions):
    def purchase(
        self,
        provider_id: str,
        product_id: str,
        plan: str,
        *,
        account_id: str | None = None,
        usage_reporting_id: str | None = None,
        offer: OfferTerms | None = None,
        offer_id: str = "",
        data: PurchaseData | None = None,
    ) -> tuple[r.Account, r.Entitlement]:
        """Buy `plan` of `product_id`: the account (created if new) and the new entitlement.

        `offer_id` names an offer of the product's catalog (its plan is used when `plan` is
        empty); `offer` gives the offer's terms inline instead.
        """
        product = self.catalog.get(provider_id, product_id)
        if product is None:
            known = ", ".join(sorted(self.catalog.products(provider_id)))
            raise InvalidArgument(f"Unknown product {product_id!r} (known: {known}).")
        offer, plan = self._offer_and_plan(provider_id, product_id, product, plan, offer, offer_id)
        with self._write() as now:
            if offer.end_time is not None and offer.end_time <= max(now, offer.start_time or now):
                raise InvalidArgument("offer.endTime must be after the offer starts.")
            account, entitlement = self._buy(
                provider_id,
                product_id,
                product,
                plan,
                account_id,
                usage_reporting_id,
                offer,
                now,
                data or PurchaseData(),
            )
            return snapshot_account(account), snapshot(entitlement)

    @staticmethod
    def _offer_and_plan(
        provider_id: str,
        product_id: str,
        product: Product,
        plan: str,
        offer: OfferTerms | None,
        offer_id: str,
    ) -> tuple[OfferTerms, str]:
        if offer_id:
            spec = product.offers.get(offer_id)
            if spec is None:
                known = ", ".join(sorted(product.offers)) or "none"
                raise InvalidArgument(
                    f"Unknown offer {offer_id!r} for product {product_id!r} (known: {known})."
                )
            if spec.plan and plan and plan != spec.plan:
                raise InvalidArgument(f"Offer {offer_id!r} sells plan {spec.plan!r}, not {plan!r}.")
            plan = plan or spec.plan or ""
            offer = spec.terms(provider_id, product.service_name, offer_id)
        if plan not in product.plans:
            raise InvalidArgument(
                f"Unknown plan {plan!r} for product {product_id!r} "
                f"(known: {', '.join(sorted(product.plans))})."
            )
        return offer or OfferTerms(), plan

    def _buy(
        self,
        provider_id: str,
        product_id: str,
        product: Product,
        plan: str,
        account_id: str | None,
        usage_reporting_id: str | None,
        offer: OfferTerms,
        now: datetime,
        data: PurchaseData,
    ) -> tuple[r.Account, r.Entitlement]:
        """A purchase, once checked: the account (created if new) and the new entitlement."""
        account_id = account_id or str(uuid.uuid4())
        account = self._accounts.get((provider_id, account_id))
        if account is None:
            approval = r.Approval(r.SIGNUP, "PENDING", now)
            account = r.Account(account_id, provider_id, now, now, {r.SIGNUP: approval})
            account.input_properties = dict(data.account_input_properties)
            account.reseller_parent_billing_account = data.reseller_parent_billing_account
            account.products = [product_id]
            self._add_account(account)
            if product.account_notifications != "off":
                self._emit_account("ACCOUNT_ACTIVE", account, now)
        elif product_id not in account.products:
            account.products = [*account.products, product_id]
        name = offer.name
        if not name and offer.is_private:
            name = offer_name(provider_id, product.service_name, str(uuid.uuid4()), private=True)
        entitlement = r.Entitlement(
            id=str(uuid.uuid4()),
            provider=provider_id,
            account_id=account_id,
            product=product_id,
            service_name=product.service_name,
            plan=plan,
            state=r.ACTIVATION_REQUESTED,
            create_time=now,
            update_time=now,
            term_days=product.term_days,
            offer=name or self._standard_offer(provider_id, product.service_name),
            fixed_offer_end=offer.end_time,
            offer_end_time=offer.end_time,
            offer_start_time=offer.start_time,
            offer_duration=offer.duration,
            auto_renew=offer.auto_renew,
            private_offer=offer.is_private,
            quote_external_name=offer.quote,
            entitlement_benefit_ids=list(offer.benefit_ids),
            input_properties=dict(data.input_properties),
            migrated_from=data.migrated_from,
        )
        entitlement.offer_history.append(entitlement.offer)
        if usage_reporting_id:
            entitlement.usage_reporting_id = usage_reporting_id
            number = usage_reporting_id.removeprefix("project_number:")
            entitlement.consumer_project = f"projects/{number}"
        else:
            self._ensure_usage_id(entitlement)
        self._add_entitlement(entitlement)
        if product.auto_approve:
            self._approve(entitlement, now, "ENTITLEMENT_OFFER_ACCEPTED")
        else:
            self._emit(
                "ENTITLEMENT_CREATION_REQUESTED", entitlement, **self._offer_terms(entitlement)
            )
        return account, entitlement

    def _offer_terms(self, entitlement: r.Entitlement) -> dict[str, str]:
        """The new offer's end date, or else its duration (manage-entitlements for offers)."""
        if entitlement.fixed_offer_end is not None:
            return {"newOfferEndTime": rfc3339(entitlement.fixed_offer_end)}
        product = self._product(entitlement)
        field_name = product.offer_duration_field if product else "newPendingOfferDuration"
        return {field_name: entitlement.current_duration}

    def _approve(self, entitlement: r.Entitlement, now: datetime, event: str | None) -> None:
        """Schedule activation: after the activation delay, and not before the offer starts."""
        start = now + self.activation_delay
        if entitlement.offer_start_time is not None and entitlement.offer_start_time > start:
            start = entitlement.offer_start_time
        entitlement.activation_time = start
        entitlement.offer_end_time = entitlement.term_end(start)
        entitlement.update_time = now
        if event is not None:
            # Both times, as Google's automatic-approval page shows them; the duration as well
            # when the offer has one.
            extra = {
                "newOfferStartTime": rfc3339(start),
                "newOfferEndTime": rfc3339(entitlement.offer_end_time),
                **self._offer_terms(entitlement),
            }
            self._emit(event, entitlement, **extra)
        if start <= now:
            self._activate(entitlement, now)

    def change_plan(
        self, provider_id: str, entitlement_id: str, plan: str = "", offer_id: str = ""
    ) -> r.Entitlement:
        """The customer picks another plan (or offer): awaits approval, or applies per the product.

        Without `offer_id` the new plan comes under the product's standard offer (the current one
        when it is already standard).
        """
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "change the plan of", r.ACTIVE)
            product = self._product(entitlement)
            if product is None:
                raise InvalidArgument(f"Unknown product {entitlement.product!r}.")
            offer, plan = self._offer_and_plan(
                provider_id, entitlement.product, product, plan, None, offer_id
            )
            if plan == entitlement.plan and not offer_id:
                raise FailedPrecondition(f"{entitlement.name} is already on plan {plan!r}.")
            self._set_pending(entitlement, plan, offer, bool(offer_id))
            if product.auto_approve:
                self._apply_plan_change(entitlement, now)
            else:
                self._set_state(entitlement, r.PENDING_PLAN_CHANGE_APPROVAL, now)
                self._emit("ENTITLEMENT_PLAN_CHANGE_REQUESTED", entitlement, newPlan=plan)
            return snapshot(entitlement)

    def _apply_plan_change(self, entitlement: r.Entitlement, now: datetime) -> None:
        product = self._product(entitlement)
        term_over = entitlement.offer_term_ended
        if product is not None and product.plan_change == "termEnd" and not term_over:
            self._set_state(entitlement, r.PENDING_PLAN_CHANGE, now)
        else:
            self._change_plan_now(entitlement, now)

    def cancel_plan_change(self, provider_id: str, entitlement_id: str) -> r.Entitlement:
        """The customer withdraws a plan change that has not taken effect yet."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(
                entitlement,
                "cancel the plan change of",
                r.PENDING_PLAN_CHANGE_APPROVAL,
                r.PENDING_PLAN_CHANGE,
            )
            self._drop_plan_change(entitlement, now)
            return snapshot(entitlement)

    def _set_pending(
        self, entitlement: r.Entitlement, plan: str, offer: OfferTerms, from_catalog: bool
    ) -> None:
        entitlement.new_pending_plan = plan
        if from_catalog:
            entitlement.pending_offer = offer.name
            entitlement.pending_offer_duration = offer.duration
            entitlement.pending_offer_end = offer.end_time
            entitlement.pending_auto_renew = offer.auto_renew
            entitlement.pending_private = offer.is_private
        elif entitlement.private_offer or entitlement.fixed_offer_end is not None:
            entitlement.pending_offer = self._standard_offer(
                entitlement.provider, entitlement.service_name
            )
        else:
            entitlement.pending_offer = entitlement.offer

    def _drop_plan_change(self, entitlement: r.Entitlement, now: datetime) -> None:
        self._clear_pending(entitlement)
        self._set_state(entitlement, r.ACTIVE, now)
        if entitlement.offer_term_ended:  # its private offer ended meanwhile: list price now
            self._carry_on(entitlement, now)
        self._emit("ENTITLEMENT_PLAN_CHANGE_CANCELLED", entitlement)

    def cancel(
        self, provider_id: str, entitlement_id: str, at_term_end: bool | None = None
    ) -> r.Entitlement:
        """Cancel now, or at the end of the term (default: the product's `cancellation`)."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            if entitlement.state == r.ACTIVATION_REQUESTED:
                self._cancel_now(entitlement, now, "user-aborted")
                return snapshot(entitlement)
            self._require(entitlement, "cancel", *sorted(r.IN_SERVICE))
            if at_term_end is None:
                product = self._product(entitlement)
                at_term_end = product is not None and product.cancellation == "termEnd"
            if at_term_end and entitlement.state != r.PENDING_CANCELLATION:
                self._clear_pending(entitlement)
                self._set_state(entitlement, r.PENDING_CANCELLATION, now)
                entitlement.subscription_end_time = entitlement.offer_end_time
                self._emit("ENTITLEMENT_PENDING_CANCELLATION", entitlement)
            elif not at_term_end:
                self._cancel_now(entitlement, now, "user-cancelled")
            return snapshot(entitlement)

    def revert_cancellation(self, provider_id: str, entitlement_id: str) -> r.Entitlement:
        """The customer takes back a cancellation that waits for the end of the term."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "revert the cancellation of", r.PENDING_CANCELLATION)
            self._set_state(entitlement, r.ACTIVE, now)
            entitlement.subscription_end_time = None
            self._emit("ENTITLEMENT_CANCELLATION_REVERTED", entitlement)
            return snapshot(entitlement)

    def renew(self, provider_id: str, entitlement_id: str) -> r.Entitlement:
        """The term renews now: a new term starts at the current time."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "renew", r.ACTIVE, r.PENDING_PLAN_CHANGE_APPROVAL)
            self._new_term(entitlement, now)
            self._emit("ENTITLEMENT_RENEWED", entitlement)
            return snapshot(entitlement)

    def end_offer(
        self, provider_id: str, entitlement_id: str, cancel: bool = False
    ) -> r.Entitlement:
        """The current offer ends now: the entitlement carries on at list price, or is cancelled."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "end the offer of", *sorted(r.IN_SERVICE))
            if entitlement.state == r.PENDING_CANCELLATION:
                cancel = True
            self._end_offer(entitlement, now, cancel)
            return snapshot(entitlement)

    def delete_entitlement(self, provider_id: str, entitlement_id: str) -> None:
        """Google deletes a cancelled entitlement: ENTITLEMENT_DELETED, then 404."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "delete", r.CANCELLED)
            self._delete(entitlement, now)

    def _delete(self, entitlement: r.Entitlement, now: datetime) -> None:
        entitlement.deleted = True
        entitlement.update_time = now
        self._remove_entitlement(entitlement)
        self._emit("ENTITLEMENT_DELETED", entitlement)

    def delete_account(self, provider_id: str, account_id: str) -> None:
        """The customer's account goes: its entitlements are cancelled and deleted first."""
        with self._write() as now:
            account = self._account(provider_id, account_id)
            for entitlement in self._account_entitlements(provider_id, account_id):
                if entitlement.state != r.CANCELLED:
                    self._cancel_now(entitlement, now, "account-closed")
                self._delete(entitlement, now)
            self._remove_account(account)
            self._emit_account("ACCOUNT_DELETED", account, now)


def snapshot_account(account: r.Account) -> r.Account:
    return r.Account(
        account.id,
        account.provider,
        account.create_time,
        account.update_time,
        {
            k: r.Approval(a.name, a.state, a.update_time, a.reason)
            for k, a in account.approvals.items()
        },
        account.state,
        dict(account.input_properties),
        account.reseller_parent_billing_account,
        list(account.products),
    )
