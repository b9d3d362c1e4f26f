"""The Partner Procurement API, through Google's official discovery client.

`ProcurementGateway` builds `cloudcommerceprocurement v1` from the discovery document bundled with
`google-api-python-client` (no network at build time), pointed at `PROCUREMENT_API_ENDPOINT` when
it is set (the emulator). Credentials: `adapters.credentials` (the key file named by
`GOOGLE_APPLICATION_CREDENTIALS` whenever set, anonymous in the sandbox, Application Default
Credentials otherwise), scoped to `cloud-platform`; `bootstrap()` passes the container's.

Every call gets its own timeout and is retried, bounded, with exponential backoff and full jitter
on 408/429/5xx, timeouts and connection errors; what still fails is raised as one of the errors of
`procurement_errors`. httplib2 objects are not thread-safe, so each thread has its own. The
connections and the retry loop are `google_api.GoogleApiTransport`, shared with Service Control;
which answers are worth retrying is decided by `procurement_errors`.

Resource ids are bare ids; the gateway builds `providers/{providerId}/...` names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from google.auth.credentials import Credentials

from marketplace_saas.adapters import crash_points
from marketplace_saas.adapters.credentials import PROCUREMENT_SCOPES, GoogleCredentials
from marketplace_saas.adapters.google_api import GoogleApiTransport
from marketplace_saas.adapters.procurement_errors import (
    NotFoundError,
    TransientProcurementError,
    classify_http_error,
    transport_error,
)
from marketplace_saas.config import Settings

ACCOUNTS_PAGE_SIZE = 200  # the documented maximum for accounts.list
ENTITLEMENTS_PAGE_SIZE = 200


class ProcurementApi(Protocol):
    """What the services need from the Procurement API (tests may pass their own)."""

    provider_id: str

    def get_account(self, account_id: str) -> dict[str, Any] | None: ...
    def list_accounts(self) -> Iterator[dict[str, Any]]: ...
    def approve_account(
        self, account_id: str, approval_name: str = "signup", reason: str | None = None
    ) -> None: ...
    def reject_account(
        self, account_id: str, reason: str, approval_name: str = "signup"
    ) -> None: ...
    def reset_account(self, account_id: str) -> None: ...
    def get_entitlement(self, entitlement_id: str) -> dict[str, Any] | None: ...
    def list_entitlements(self, filter: str | None = None) -> Iterator[dict[str, Any]]: ...
    def approve_entitlement(self, entitlement_id: str) -> None: ...
    def reject_entitlement(self, entitlement_id: str, reason: str) -> None: ...
    def approve_plan_change(self, entitlement_id: str, pending_plan_name: str) -> None: ...
    def reject_plan_change(
        self, entitlement_id: str, pending_plan_name: str, reason: str
    ) -> None: ...
    def suspend_entitlement(self, entitlement_id: str, reason: str) -> None: ...
    def patch_message_to_user(self, entitlement_id: str, message: str) -> dict[str, Any]: ...


class ProcurementGateway:
    """The Procurement API for one provider, safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials | None = None,
        http_factory: Callable[[], Any] | None = None,
        timeout: float = 20.0,
        max_attempts: int = 4,
        backoff_base: float = 0.2,
        backoff_max: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = ENTITLEMENTS_PAGE_SIZE,
    ) -> None:
        self.provider_id = settings.provider_id
        self._transport = GoogleApiTransport(
            credentials,
            default_credentials=lambda: GoogleCredentials(settings).scoped(PROCUREMENT_SCOPES),
            http_factory=http_factory,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
        )
        self._page_size = page_size
        self._service: Any = self._transport.build_service(
            "cloudcommerceprocurement", "v1", settings.procurement_api_endpoint
        )
        # Building a resource creates its method objects (costly); they only build requests.
        self._accounts: Any = self._service.providers().accounts()
        self._entitlements: Any = self._service.providers().entitlements()

    # -- transport ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this gateway opened, in any thread."""
        self._transport.close()

    def _execute(self, action: str, request: Any) -> Any:
        return self._transport.execute(
            request,
            http_error=lambda exc: classify_http_error(
                int(exc.resp.status), exc.content, action=action
            ),
            transport_error=lambda exc: transport_error(exc, action=action),
            transient=TransientProcurementError,
        )

    def _get_or_none(self, action: str, request: Any) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._execute(action, request)
        except NotFoundError:
            return None
        return result

    # -- names ----------------------------------------------------------------------------------

    @property
    def _parent(self) -> str:
        return f"providers/{self.provider_id}"

    def account_name(self, account_id: str) -> str:
        return f"{self._parent}/accounts/{account_id}"

    def entitlement_name(self, entitlement_id: str) -> str:
        return f"{self._parent}/entitlements/{entitlement_id}"

    # -- accounts -------------------------------------------------------------------------------

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        """The account, or None when the API answers 404 (deleted or unknown)."""
        accounts = self._accounts
        return self._get_or_none("get_account", accounts.get(name=self.account_name(account_id)))

    def list_accounts(self) -> Iterator[dict[str, Any]]:
        """Every account of the provider, page after page."""
        accounts = self._accounts
        token: str | None = None
        while True:
            request = accounts.list(
                parent=self._parent,
                pageSize=min(self._page_size, ACCOUNTS_PAGE_SIZE),
                pageToken=token,
            )
            page = self._execute("list_accounts", request)
            yield from page.get("accounts", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def approve_account(
        self, account_id: str, approval_name: str = "signup", reason: str | None = None
    ) -> None:
        body: dict[str, Any] = {"approvalName": approval_name}
        if reason:
            body["reason"] = reason
        accounts = self._accounts
        self._execute(
            "approve_account", accounts.approve(name=self.account_name(account_id), body=body)
        )

    def reject_account(self, account_id: str, reason: str, approval_name: str = "signup") -> None:
        body = {"approvalName": approval_name, "reason": reason}
        accounts = self._accounts
        self._execute(
            "reject_account", accounts.reject(name=self.account_name(account_id), body=body)
        )

    def reset_account(self, account_id: str) -> None:
        accounts = self._accounts
        self._execute("reset_account", accounts.reset(name=self.account_name(account_id), body={}))

    # -- entitlements ---------------------------------------------------------------------------

    def get_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        """The entitlement, or None when the API answers 404 (ENTITLEMENT_DELETED)."""
        entitlements = self._entitlements
        return self._get_or_none(
            "get_entitlement", entitlements.get(name=self.entitlement_name(entitlement_id))
        )

    def list_entitlements(self, filter: str | None = None) -> Iterator[dict[str, Any]]:
        """Every entitlement matching `filter` (reference section 1.8), page after page."""
        entitlements = self._entitlements
        token: str | None = None
        while True:
            request = entitlements.list(
                parent=self._parent,
                filter=filter or None,
                pageSize=self._page_size,
                pageToken=token,
            )
            page = self._execute("list_entitlements", request)
            yield from page.get("entitlements", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def _entitlement_call(self, action: str, method: str, entitlement_id: str, body: Any) -> None:
        entitlements = self._entitlements
        request = getattr(entitlements, method)(
            name=self.entitlement_name(entitlement_id), body=body
        )
        self._execute(action, request)
        crash_points.reached("procurement.after_call")  # the crash tests' hook; a no-op otherwise

    def approve_entitlement(self, entitlement_id: str) -> None:
        self._entitlement_call("approve_entitlement", "approve", entitlement_id, {})

    def reject_entitlement(self, entitlement_id: str, reason: str) -> None:
        self._entitlement_call("reject_entitlement", "reject", entitlement_id, {"reason": reason})

    def approve_plan_change(self, entitlement_id: str, pending_plan_name: str) -> None:
        body = {"pendingPlanName": pending_plan_name}
        self._entitlement_call("approve_plan_change", "approvePlanChange", entitlement_id, body)

    def reject_plan_change(self, entitlement_id: str, pending_plan_name: str, reason: str) -> None:
        body = {"pendingPlanName": pending_plan_name, "reason": reason}
        self._entitlement_call("reject_plan_change", "rejectPlanChange", entitlement_id, body)

    def suspend_entitlement(self, entitlement_id: str, reason: str) -> None:
        """Google documents suspension as "not yet supported"; expect an error."""
        self._entitlement_call("suspend_entitlement", "suspend", entitlement_id, {"reason": reason})

    def patch_message_to_user(self, entitlement_id: str, message: str) -> dict[str, Any]:
        """Set `messageToUser` (only allowed while a provider decision is pending)."""
        entitlements = self._entitlements
        request = entitlements.patch(
            name=self.entitlement_name(entitlement_id),
            updateMask="messageToUser",
            body={"messageToUser": message},
        )
        result: dict[str, Any] = self._execute("patch_message_to_user", request)
        return result
