"""Service Control v1 (`services.check`, `services.report`), through Google's discovery client.

`ServiceControlGateway` builds `servicecontrol v1` from the discovery document bundled with
`google-api-python-client`, pointed at `SERVICE_CONTROL_API_ENDPOINT` when set (the emulator), with
`adapters.credentials` scoped to `servicecontrol`.
Every call has a timeout and is retried, bounded, with exponential backoff and full jitter on
408/429/5xx, timeouts and connection errors (`google_api.GoogleApiTransport`, shared with the
Procurement gateway). This module is the one place that classifies Service Control's answers:

    ServiceControlError                 a request failed as a whole (400, 403, ...): do not retry it
     └── TransientServiceControlError   429, 5xx, timeouts, broken connections after the retries;
                                        for a report, whether Google recorded it is unknown

    report_error_is_transient(status) -> whether a `reportErrors` entry is worth re-sending

and the one place that writes an Operation's wire JSON (`operation_json`). What a check's
`checkErrors` mean for the customer's service is a business rule: `domain.suspension`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from google.auth.credentials import Credentials
from googleapiclient.errors import HttpError

from marketplace_saas.adapters.credentials import (
    SERVICECONTROL,
    SERVICECONTROL_SCOPES,
    GoogleCredentials,
)
from marketplace_saas.adapters.google_api import GoogleApiTransport
from marketplace_saas.config import Settings
from marketplace_saas.domain.metering import ReportRow
from marketplace_saas.domain.time import format_rfc3339

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
OPERATION_NAME = "Hourly Usage Report"

# google.rpc codes of a `reportErrors` status worth re-sending: UNKNOWN, DEADLINE_EXCEEDED,
# RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE.
TRANSIENT_RPC_CODES = frozenset({2, 4, 8, 10, 13, 14})


def operation_json(row: ReportRow, *, for_report: bool) -> dict[str, Any]:
    """The Service Control Operation of one ledger row (the same bytes on every re-send).

    A check carries no `userLabels`; a report carries the window's labels when it has any.
    """
    value_sets = []
    for name, entry in sorted(row.metric_values.items()):
        if not isinstance(entry, dict) or "type" not in entry:
            continue
        value: dict[str, Any] = (
            {"int64Value": str(entry["value"])}
            if entry["type"] == "int64"
            else {"doubleValue": float(entry["value"])}
        )
        value_sets.append({"metricName": name, "metricValues": [value]})
    operation: dict[str, Any] = {
        "operationId": row.operation_id,
        "operationName": OPERATION_NAME,
        "consumerId": row.consumer_id,
        "startTime": format_rfc3339(row.window_start),
        "endTime": format_rfc3339(row.window_end),
        "metricValueSets": value_sets,
    }
    if for_report and row.user_labels:
        operation["userLabels"] = dict(row.user_labels)
    return operation


class ServiceControlError(Exception):
    """A Service Control request failed; `status_code` and `status` say how."""

    def __init__(self, message: str, *, status_code: int | None = None, status: str | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.status = status

    def __str__(self) -> str:
        code = f" [{self.status_code} {self.status or ''}]".rstrip() if self.status_code else ""
        return f"{self.message}{code}"


class TransientServiceControlError(ServiceControlError):
    """Retry later: unavailable, rate limited, timed out, or the connection broke."""


def report_error_is_transient(status: dict[str, Any]) -> bool:
    return int(status.get("code", 2)) in TRANSIENT_RPC_CODES


class ServiceControlApi(Protocol):
    """What the reporter needs from Service Control (tests may wrap or replace it)."""

    def check(self, service_name: str, operation: dict[str, Any]) -> dict[str, Any]: ...
    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]: ...


def _error_from_http(exc: HttpError) -> ServiceControlError:
    status_code = int(exc.resp.status)
    status, message = None, str(exc.reason or "")
    try:
        body = json.loads(exc.content or b"{}")
        error = body.get("error", {}) if isinstance(body, dict) else {}
        status = error.get("status") or None
        message = error.get("message") or message
    except ValueError:
        pass
    message = message or f"HTTP {status_code}"
    if status_code == 401:
        message += " (the credentials were refused: check GOOGLE_APPLICATION_CREDENTIALS)"
    elif status_code == 403:
        message += (
            f" (the caller needs the OAuth scope {SERVICECONTROL} and the permissions "
            "servicemanagement.services.check and .report on the service; check "
            "MARKETPLACE_SERVICE_NAME)"
        )
    kind = (
        TransientServiceControlError if status_code in RETRYABLE_STATUSES else ServiceControlError
    )
    return kind(message, status_code=status_code, status=status)


def _error_from_transport(exc: BaseException) -> TransientServiceControlError:
    return TransientServiceControlError(f"{type(exc).__name__}: {exc}")


class ServiceControlGateway:
    """`services.check` and `services.report`, safe to share between threads."""

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
    ) -> None:
        self._transport = GoogleApiTransport(
            credentials,
            default_credentials=lambda: GoogleCredentials(settings).scoped(SERVICECONTROL_SCOPES),
            http_factory=http_factory,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
            close_finished_threads=True,
        )
        self._service: Any = self._transport.build_service(
            "servicecontrol", "v1", settings.service_control_api_endpoint
        )

    def close(self) -> None:
        """Close every connection this gateway opened, in any thread."""
        self._transport.close()

    def _execute(self, request: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._transport.execute(
            request,
            http_error=_error_from_http,
            transport_error=_error_from_transport,
            transient=TransientServiceControlError,
        )
        return result

    def check(
        self, service_name: str, operation: dict[str, Any], *, skip_activation_check: bool = False
    ) -> dict[str, Any]:
        """`skip_activation_check`: no consumer activation check (`doctor`'s dry consumer)."""
        body: dict[str, Any] = {"operation": operation}
        if skip_activation_check:
            body["skipActivationCheck"] = True
        request = self._service.services().check(serviceName=service_name, body=body)
        return self._execute(request)

    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        request = self._service.services().report(
            serviceName=service_name, body={"operations": operations}
        )
        return self._execute(request)
