"""The one place that classifies the Procurement API's errors.

    ProcurementError                 a real failure: the call did not do what was asked
     ├── TransientProcurementError   retry later: 429, 5xx, timeouts and connection errors that
     │                               outlived the gateway's own bounded retries
     ├── NotFoundError               404 NOT_FOUND (benign for reads: the resource is gone)
     └── FailedPreconditionError     400 FAILED_PRECONDITION: the resource is not in the state the
                                     call needs (benign when the call's effect is already there)

Benign cases are an explicit list (`BENIGN`): an action name and the error class that is expected
when the action has nothing left to do. The caller still re-reads the resource to confirm, because
Google does not document the codes for wrong-state calls (reference section 1.9).
"""

from __future__ import annotations

import json
from typing import Any

from marketplace_saas.adapters.credentials import CLOUD_PLATFORM

# Statuses worth retrying: rate limiting, server errors, request timeouts.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ProcurementError(Exception):
    """A Procurement API call failed; `status_code`, `status` and `message` say how."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.status = status
        self.action = action

    def __str__(self) -> str:
        where = f"{self.action}: " if self.action else ""
        code = f" [{self.status_code} {self.status or ''}]".rstrip() if self.status_code else ""
        return f"{where}{self.message}{code}"


class TransientProcurementError(ProcurementError):
    """Retry later: the API was unavailable, rate limited us, or timed out."""


class NotFoundError(ProcurementError):
    """404: no such account or entitlement (deleted, or never existed)."""


class FailedPreconditionError(ProcurementError):
    """400 FAILED_PRECONDITION: the resource is in the wrong state for this call."""


# (action, error class) -> the benign outcome recorded in the audit log.
BENIGN: dict[tuple[str, type[ProcurementError]], str] = {
    ("get_account", NotFoundError): "not_found",
    ("get_entitlement", NotFoundError): "not_found",
    ("approve_account", FailedPreconditionError): "already_approved",
    ("approve_entitlement", FailedPreconditionError): "already_approved",
    ("reject_entitlement", FailedPreconditionError): "already_rejected",
    ("approve_plan_change", FailedPreconditionError): "already_approved",
    ("reject_plan_change", FailedPreconditionError): "already_rejected",
    ("approve_entitlement", NotFoundError): "not_found",
    ("reject_entitlement", NotFoundError): "not_found",
}


def benign_outcome(error: ProcurementError) -> str | None:
    """The benign name of this error for its action, or None when it is a real failure."""
    if error.action is None:
        return None
    for (action, kind), outcome in BENIGN.items():
        if action == error.action and isinstance(error, kind):
            return outcome
    return None


def _envelope(content: bytes | str | None) -> tuple[str | None, str | None]:
    """(status, message) from Google's JSON error envelope, when the body is one."""
    if not content:
        return None, None
    try:
        body: Any = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    status = error.get("status")
    message = error.get("message")
    return (
        status if isinstance(status, str) else None,
        message if isinstance(message, str) else None,
    )


# The IAM permission each call needs; those marked in the reference as unconfirmed are guesses.
PERMISSIONS = {
    "get_account": "commerceprocurement.providerAccounts.get",
    "list_accounts": "commerceprocurement.providerAccounts.list",
    "approve_account": "commerceprocurement.providerAccounts.approve",
    "reject_account": "commerceprocurement.providerAccounts.reject",
    "reset_account": "commerceprocurement.providerAccounts.reset",
    "get_entitlement": "commerceprocurement.providerEntitlements.get",
    "list_entitlements": "commerceprocurement.providerEntitlements.list",
    "approve_entitlement": "commerceprocurement.providerEntitlements.approve",
    "reject_entitlement": "commerceprocurement.providerEntitlements.reject",
    "approve_plan_change": "commerceprocurement.providerEntitlements.approve",
    "reject_plan_change": "commerceprocurement.providerEntitlements.reject",
    "suspend_entitlement": "commerceprocurement.providerEntitlements.suspend",
    "patch_message_to_user": "commerceprocurement.providerEntitlements.update",
}


def auth_hint(status_code: int, action: str) -> str:
    """What a 401 or 403 means for this call, for the operator (empty for other answers)."""
    if status_code == 401:
        return (
            " (the credentials were refused: check GOOGLE_APPLICATION_CREDENTIALS or the "
            "workload identity)"
        )
    if status_code == 403:
        permission = PERMISSIONS.get(action, "commerceprocurement.*")
        return (
            f" (the caller needs the OAuth scope {CLOUD_PLATFORM} and the IAM permission "
            f"{permission} on the provider; check MARKETPLACE_PROVIDER_ID too)"
        )
    return ""


def classify_http_error(
    status_code: int, content: bytes | str | None, *, action: str
) -> ProcurementError:
    """Map an HTTP error answer to the exception tree above."""
    status, message = _envelope(content)
    text = (message or f"HTTP {status_code}") + auth_hint(status_code, action)
    kwargs: dict[str, Any] = {"status_code": status_code, "status": status, "action": action}
    if status_code in RETRYABLE_STATUSES:
        return TransientProcurementError(text, **kwargs)
    if status_code == 404:
        return NotFoundError(text, **kwargs)
    if status_code == 400 and status == "FAILED_PRECONDITION":
        return FailedPreconditionError(text, **kwargs)
    return ProcurementError(text, **kwargs)


def transport_error(exc: BaseException, *, action: str) -> TransientProcurementError:
    """A timeout or connection error that outlived the retries."""
    return TransientProcurementError(
        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, action=action
    )
