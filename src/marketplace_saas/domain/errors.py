"""The backend's own errors, for operators and callers (CLI, sign-up page, admin console).

    MarketplaceError            base of the backend's domain errors
     ├── ResourceNotFound       the Procurement API has no such account or entitlement
     └── NothingToDecide        the resource is not waiting for this decision (its state says why)

Invalid notifications have their own exception, `domain.notifications.InvalidNotification`.
Procurement API failures are the adapter's (`adapters.procurement_errors`).
"""

from __future__ import annotations


class MarketplaceError(Exception):
    """A clear, user-facing failure of a backend operation."""


class ResourceNotFound(MarketplaceError):
    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"the Procurement API has no {kind} {resource_id!r}")
        self.kind = kind
        self.resource_id = resource_id


class NothingToDecide(MarketplaceError):
    def __init__(self, kind: str, resource_id: str, state: str | None, wanted: str) -> None:
        super().__init__(f"{kind} {resource_id!r} is in state {state or 'unknown'}; {wanted}")
        self.kind = kind
        self.resource_id = resource_id
        self.state = state
