"""The Procurement API as dicts of resources, for the use-case tests (`fakes.FakeApp`).

procurement.add_account("a-1", signup="PENDING")
procurement.add_entitlement("e-1", account="a-1", state=ACTIVATION_REQUESTED)
procurement.refuse["get_entitlement"] = TransientProcurementError("down")   # a fault
procurement.requests                                  # [(method, resource id), ...]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

PROVIDER = "DEMO-provider"


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeProcurement:
    """The Procurement API as dicts of resources; decisions move states the way Google does,
    at once (no activation delay, no notification)."""

    def __init__(self, now: Callable[[], datetime], provider_id: str = PROVIDER) -> None:
        self.provider_id = provider_id
        self.now = now
        self.accounts: dict[str, dict[str, Any]] = {}
        self.entitlements: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, resource id)
        self.refuse: dict[str, Exception] = {}  # method -> what it raises

    def _name(self, kind: str, resource_id: str) -> str:
        return f"providers/{self.provider_id}/{kind}/{resource_id}"

    def _touch(self, resource: dict[str, Any]) -> None:
        resource["updateTime"] = _rfc3339(self.now())

    def _ask(self, method: str, resource_id: str) -> None:
        self.requests.append((method, resource_id))
        if method in self.refuse:
            raise self.refuse[method]

    # -- seeding --------------------------------------------------------------------------------

    def add_account(self, account_id: str, *, signup: str = "PENDING") -> dict[str, Any]:
        resource = {
            "name": self._name("accounts", account_id),
            "state": "ACCOUNT_ACTIVE",
            "approvals": [{"name": "signup", "state": signup}],
            "createTime": _rfc3339(self.now()),
        }
        self._touch(resource)
        self.accounts[account_id] = resource
        return resource

    def add_entitlement(
        self, entitlement_id: str, *, account: str, state: str, plan: str = "basic", **extra: Any
    ) -> dict[str, Any]:
        resource = {
            "name": self._name("entitlements", entitlement_id),
            "account": self._name("accounts", account),
            "state": state,
            "product": "demo-product",
            "plan": plan,
            "createTime": _rfc3339(self.now()),
            **extra,
        }
        self._touch(resource)
        self.entitlements[entitlement_id] = resource
        return resource

    def set_entitlement(self, entitlement_id: str, **fields: Any) -> None:
        resource = self.entitlements[entitlement_id]
        for key, value in fields.items():
            if value is None:
                resource.pop(key, None)
            else:
                resource[key] = value
        self._touch(resource)

    # -- the API --------------------------------------------------------------------------------

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        self._ask("get_account", account_id)
        found = self.accounts.get(account_id)
        return copy.deepcopy(found) if found is not None else None

    def list_accounts(self) -> Iterator[dict[str, Any]]:
        yield from (copy.deepcopy(a) for a in self.accounts.values())

    def approve_account(
        self, account_id: str, approval_name: str = "signup", reason: str | None = None
    ) -> None:
        self._ask("approve_account", account_id)
        resource = self.accounts[account_id]
        resource["approvals"] = [{"name": approval_name, "state": "APPROVED"}]
        self._touch(resource)

    def reject_account(self, account_id: str, reason: str, approval_name: str = "signup") -> None:
        self._ask("reject_account", account_id)
        resource = self.accounts[account_id]
        resource["approvals"] = [{"name": approval_name, "state": "REJECTED", "reason": reason}]
        self._touch(resource)

    def reset_account(self, account_id: str) -> None:
        self._ask("reset_account", account_id)
        self.accounts[account_id]["approvals"] = [{"name": "signup", "state": "PENDING"}]

    def get_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        self._ask("get_entitlement", entitlement_id)
        found = self.entitlements.get(entitlement_id)
        return copy.deepcopy(found) if found is not None else None

    def list_entitlements(self, filter: str | None = None) -> Iterator[dict[str, Any]]:
        for resource in list(self.entitlements.values()):
            if filter and f'account="{resource["account"].rsplit("/", 1)[-1]}"' not in filter:
                continue
            state = resource["state"]
            if filter and "state=" in filter and f"state={state}" not in filter:
                continue
            yield copy.deepcopy(resource)

    def approve_entitlement(self, entitlement_id: str) -> None:
        self._ask("approve_entitlement", entitlement_id)
        self.set_entitlement(entitlement_id, state="ENTITLEMENT_ACTIVE", messageToUser=None)

    def reject_entitlement(self, entitlement_id: str, reason: str) -> None:
        self._ask("reject_entitlement", entitlement_id)
        self.set_entitlement(entitlement_id, state="ENTITLEMENT_CANCELLED")

    def approve_plan_change(self, entitlement_id: str, pending_plan_name: str) -> None:
        self._ask("approve_plan_change", entitlement_id)
        resource = self.entitlements[entitlement_id]
        assert resource.get("newPendingPlan") == pending_plan_name
        self.set_entitlement(
            entitlement_id, state="ENTITLEMENT_ACTIVE", plan=pending_plan_name, newPendingPlan=None
        )

    def reject_plan_change(self, entitlement_id: str, pending_plan_name: str, reason: str) -> None:
        self._ask("reject_plan_change", entitlement_id)
        self.set_entitlement(entitlement_id, state="ENTITLEMENT_ACTIVE", newPendingPlan=None)

    def suspend_entitlement(self, entitlement_id: str, reason: str) -> None:
        self._ask("suspend_entitlement", entitlement_id)
        self.set_entitlement(entitlement_id, state="ENTITLEMENT_SUSPENDED")

    def patch_message_to_user(self, entitlement_id: str, message: str) -> dict[str, Any]:
        self._ask("patch_message_to_user", entitlement_id)
        self.entitlements[entitlement_id]["messageToUser"] = message
        return copy.deepcopy(self.entitlements[entitlement_id])
