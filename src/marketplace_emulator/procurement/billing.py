"""Customer actions on the billing side: billing disabled on the account, a migration to another
product. Each ends entitlements with the `cancellationReason` the discovery document names for it:
"billing-disabled" ("if the customer has manually disabled billing to their resources") and
"migrated" ("if the entitlement has migrated across products").

How Google sequences a migration is not documented [unconfirmed]: here the customer's migration
creates the new entitlement (ENTITLEMENT_CREATION_REQUESTED, as any purchase) and the old one is
cancelled with `migrated` when the new one becomes ACTIVE, so the service never lapses. The
provider may also name the old entitlement in `entitlements.approve` (`entitlementMigrated`).
"""

from __future__ import annotations

from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.customer import CustomerActions, PurchaseData
from marketplace_emulator.procurement.exceptions import FailedPrecondition, InvalidArgument
from marketplace_emulator.procurement.store import snapshot


class BillingActions(CustomerActions):
    def disable_billing(self, provider_id: str, account_id: str) -> list[r.Entitlement]:
        """The customer disables billing: every entitlement of the account not yet cancelled is
        CANCELLED now with `billing-disabled` (one ENTITLEMENT_CANCELLED each)."""
        with self._write() as now:
            self._account(provider_id, account_id)
            ended = [
                e
                for e in self._account_entitlements(provider_id, account_id)
                if e.state != r.CANCELLED
            ]
            for entitlement in ended:
                self._cancel_now(entitlement, now, "billing-disabled")
            return [snapshot(e) for e in ended]

    def migrate(
        self,
        provider_id: str,
        entitlement_id: str,
        product_id: str,
        plan: str = "",
        offer_id: str = "",
    ) -> r.Entitlement:
        """The customer moves an entitlement to another product: the new entitlement (same account)
        awaits approval; the old one is cancelled (`migrated`) when the new one becomes ACTIVE."""
        with self._read():
            source = self._entitlement(provider_id, entitlement_id)
            if source.state not in r.IN_SERVICE:
                raise FailedPrecondition(
                    f"Cannot migrate {source.name}: it is {source.state}, not in service."
                )
            if product_id == source.product:
                raise InvalidArgument("A migration moves an entitlement to another product.")
            account_id, name = source.account_id, source.name
        _, entitlement = self.purchase(
            provider_id,
            product_id,
            plan,
            account_id=account_id,
            offer_id=offer_id,
            data=PurchaseData(migrated_from=name),
        )
        return entitlement

    def _check_migrated(self, entitlement: r.Entitlement, migrated: str) -> str:
        """`entitlementMigrated` of `entitlements.approve`: another entitlement of the account."""
        prefix = f"providers/{entitlement.provider}/entitlements/"
        source_id = migrated.removeprefix(prefix)
        if not migrated.startswith(prefix) or not source_id or "/" in source_id:
            raise InvalidArgument(
                f"entitlementMigrated must be an entitlement name {prefix}{{entitlement_id}} "
                f"(got {migrated!r})."
            )
        source = self._entitlements.get((entitlement.provider, source_id))
        if source is None or source.account_id != entitlement.account_id or source is entitlement:
            raise InvalidArgument(
                f"entitlementMigrated {migrated!r} is not another entitlement of account "
                f"{entitlement.account_name}."
            )
        return migrated
