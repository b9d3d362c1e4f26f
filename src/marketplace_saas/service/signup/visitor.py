"""Who is signing up: the sign-up token verified, the account and its purchases read from Google.

    identify(app, token, route=...)   the verified visitor and their account (no records change)
    purchases_of(app, account_id)     the account's entitlements, oldest first, not cancelled

Errors: `SignupRefused` (401: the token or the account is not acceptable; `reason` is logged,
never the token), `SignupUnavailable` (503: Google or its certificates cannot be reached now),
`InvalidForm` (the answers need fixing; `errors` per field).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from marketplace_saas.adapters.procurement_errors import ProcurementError, TransientProcurementError
from marketplace_saas.adapters.tokens import (
    CertificatesUnavailable,
    InvalidSignupToken,
    SignupToken,
    SignupTokenVerifier,
)
from marketplace_saas.config import Settings
from marketplace_saas.domain.entitlements import CANCELLED, AccountView, EntitlementView
from marketplace_saas.domain.errors import MarketplaceError
from marketplace_saas.domain.signup import Purchase, Validated, Visitor, orders_shown
from marketplace_saas.service.unit_of_work import App

log = structlog.get_logger(__name__)

SANDBOX_AUDIENCE = "localhost"  # SIGNUP_AUDIENCE in the sandbox when none is set


class SignupError(MarketplaceError):
    """Sign-up could not go ahead."""


class SignupRefused(SignupError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SignupUnavailable(SignupError):
    """Try again shortly: Google, or its certificates endpoint, could not be reached."""


class InvalidForm(SignupError):
    def __init__(self, validated: Validated) -> None:
        super().__init__("the sign-up form has errors: " + ", ".join(sorted(validated.errors)))
        self.validated = validated


def audience(settings: Settings) -> str:
    if settings.signup_audience:
        return settings.signup_audience
    if settings.sandbox:
        return SANDBOX_AUDIENCE
    raise SignupUnavailable("sign-up is not configured: set SIGNUP_AUDIENCE to the product domain")


@functools.lru_cache(maxsize=8)
def _verifier(certs_url: str, expected_audience: str) -> SignupTokenVerifier:
    """One verifier (and certificate cache) per pinned URL and audience, for the process."""
    return SignupTokenVerifier.for_url(certs_url, expected_audience)


def verifier_for(settings: Settings) -> SignupTokenVerifier:
    return _verifier(settings.signup_certs_url, audience(settings))


def identify(container: App, token: str, *, route: str) -> tuple[Visitor, AccountView]:
    """The verified visitor and their account as the Procurement API has it; no records change."""
    try:
        verified = verifier_for(container.settings).verify(token)
    except InvalidSignupToken as exc:
        log.warning("signup.token_rejected", route=route, reason=exc.reason)
        raise SignupRefused(exc.reason, exc.message) from None
    except CertificatesUnavailable as exc:
        log.error("signup.certs_unavailable", route=route, error=str(exc))
        raise SignupUnavailable("Google's sign-up certificates could not be read") from None
    resource = google_read(lambda: container.procurement.get_account(verified.account_id))
    if resource is None:
        reason = "unknown_account"
        log.warning(
            "signup.token_rejected", route=route, reason=reason, account_id=verified.account_id
        )
        raise SignupRefused("unknown_account", "Google Cloud Marketplace has no such account.")
    return _visitor(verified), AccountView.from_api(resource)


def _visitor(token: SignupToken) -> Visitor:
    return Visitor(token.account_id, token.user_identity, token.roles, token.orders)


def google_read(call: Any) -> Any:
    """A Procurement API read; any failure is "try again shortly" for the buyer, logged for us."""
    try:
        return call()
    except TransientProcurementError as exc:
        log.warning("signup.procurement_unavailable", error=str(exc))
        raise SignupUnavailable("Google Cloud Marketplace could not be reached") from None
    except ProcurementError as exc:
        log.error("signup.procurement_failed", error=str(exc))
        raise SignupUnavailable("Google Cloud Marketplace refused our request") from None


def purchases_of(container: App, account_id: str, orders: Sequence[str] = ()) -> list[Purchase]:
    """The account's entitlements from the API, oldest first, without cancelled ones; then each
    order the sign-up token names (`orders`) that is not among them, as `NOT_FOUND`."""
    quoted = account_id.replace("\\", "\\\\").replace('"', '\\"')
    query = f'account="{quoted}"'
    resources = google_read(lambda: list(container.procurement.list_entitlements(query)))
    views = [EntitlementView.from_api(r) for r in resources]
    oldest = datetime.min.replace(tzinfo=UTC)
    views.sort(key=lambda v: (v.create_time is None, v.create_time or oldest, v.id))
    live = [Purchase.from_view(v, orders) for v in views if v.state != CANCELLED]
    return orders_shown(live, orders)
