"""The Procurement API's errors, each answered in Google's JSON envelope.

    ApiError                        (marketplace_emulator.errors)
     ├── InvalidArgument            400 INVALID_ARGUMENT: malformed JSON, bad names, unknown fields,
     │                                  a malformed filter or page token
     ├── FailedPrecondition         400 FAILED_PRECONDITION: a call in the wrong state
     │    └── WrongState            ... naming the state the resource is in
     ├── NotFound                   404 NOT_FOUND: no such (or a deleted) account or entitlement
     │    ├── AccountNotFound
     │    └── EntitlementNotFound
     └── Unimplemented              501 UNIMPLEMENTED: entitlements.suspend ("not yet supported")

Google does not document the codes or messages for wrong-state calls (reference section 1.9);
FAILED_PRECONDITION is the emulator's choice.
"""

from __future__ import annotations

from marketplace_emulator.errors import (
    ApiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unimplemented,
)

__all__ = [
    "AccountNotFound",
    "ApiError",
    "EntitlementNotFound",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Unimplemented",
    "WrongState",
]


class AccountNotFound(NotFound):
    def __init__(self, provider_id: str, account_id: str) -> None:
        super().__init__(f"Account providers/{provider_id}/accounts/{account_id} not found.")


class EntitlementNotFound(NotFound):
    def __init__(self, provider_id: str, entitlement_id: str) -> None:
        super().__init__(
            f"Entitlement providers/{provider_id}/entitlements/{entitlement_id} not found."
        )


class WrongState(FailedPrecondition):
    def __init__(self, name: str, state: str, action: str, allowed: tuple[str, ...]) -> None:
        wanted = " or ".join(allowed)
        super().__init__(f"Cannot {action} {name}: it is in state {state}, not {wanted}.")
