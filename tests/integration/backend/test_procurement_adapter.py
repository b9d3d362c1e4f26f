"""The Procurement gateway over HTTP against the Marketplace emulator, with Google's client."""

from __future__ import annotations

import pytest

from marketplace_emulator.faults import FaultSettings, ProcurementFaults
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.adapters.procurement_errors import (
    FailedPreconditionError,
    ProcurementError,
    TransientProcurementError,
)
from marketplace_saas.bootstrap import Container
from tests.integration.backend.conftest import PROVIDER

pytestmark = pytest.mark.integration


def test_gateway_reads_and_pages_through_every_entitlement(
    emulator: Emulator, container: Container
) -> None:
    """list_entitlements follows nextPageToken; get_entitlement returns the API's resource."""
    account, first = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    ids = {first.id}
    for _ in range(4):
        ids.add(
            emulator.procurement.purchase(
                PROVIDER, "example-product", "pro", account_id=account.id
            )[1].id
        )
    gateway = ProcurementGateway(container.settings, page_size=2)
    try:
        listed = list(gateway.list_entitlements(f'account="{account.id}"'))
    finally:
        gateway.close()
    assert {e["name"].rsplit("/", 1)[1] for e in listed} == ids
    got = container.procurement.get_entitlement(first.id)
    assert got is not None
    assert got["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert got["account"] == f"providers/{PROVIDER}/accounts/{account.id}"
    assert container.procurement.get_entitlement("no-such-entitlement") is None
    assert container.procurement.get_account("no-such-account") is None


def test_wrong_state_calls_are_failed_preconditions(
    emulator: Emulator, container: Container
) -> None:
    """The emulator refuses an entitlement approval before the account's: a precondition."""
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    with pytest.raises(FailedPreconditionError, match="Approve the account first"):
        container.procurement.approve_entitlement(entitlement.id)


def test_injected_server_errors_are_retried_then_reported_as_transient(
    emulator: Emulator, container: Container
) -> None:
    """With every call failing, the bounded retries end in TransientProcurementError."""
    emulator.faults.configure(
        FaultSettings(procurement=ProcurementFaults(error_rate=1.0, statuses=[503]))
    )
    with pytest.raises(TransientProcurementError) as caught:
        container.procurement.get_account("anything")
    assert caught.value.status_code == 503


def test_suspend_is_not_supported_and_says_so(emulator: Emulator, container: Container) -> None:
    """Google documents suspension as not yet supported: a real failure, never benign."""
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    with pytest.raises(ProcurementError) as caught:
        container.procurement.suspend_entitlement(entitlement.id, "abuse")
    assert caught.value.status_code == 501
