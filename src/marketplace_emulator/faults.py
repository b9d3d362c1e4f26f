"""Seeded fault injection, configured with `PUT /emulator/v1/faults`.

The body (every key optional; `{}` clears everything):

    {"seed": 1,
     "procurement":    {"errorRate": 0.2, "statuses": [429, 500, 503], "latencyMs": 0,
                        "forgetProviders": []},
     "servicecontrol": {"errorRate": 0, "statuses": [503], "latencyMs": 0, "reportErrorRate": 0},
     "notifications":  {"duplicateRate": 0, "reorder": false, "delayMs": 0},
     "checkErrors":    {"<consumerId>": "BILLING_DISABLED"}}

Decisions come from one `random.Random(seed)` per API, so a failing run can be repeated exactly.
`forgetProviders` is no draw: while it names a provider, Procurement answers that provider as if
it had lost its data (`forgotten_answer`), and the state is back as soon as the fault is cleared.
"""

from __future__ import annotations

import random
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The CheckError codes the emulator can be told to answer for a consumer (reference section 4.4).
INJECTABLE_CHECK_ERRORS = frozenset(
    {
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "SERVICE_NOT_ACTIVATED",
        "BILLING_DISABLED",
        "PROJECT_DELETED",
        "PROJECT_INVALID",
        "CONSUMER_INVALID",
        "NAMESPACE_LOOKUP_UNAVAILABLE",
        "SERVICE_STATUS_UNAVAILABLE",
        "BILLING_STATUS_UNAVAILABLE",
        "QUOTA_CHECK_UNAVAILABLE",
        "LOAS_PROJECT_LOOKUP_UNAVAILABLE",
        "CLOUD_RESOURCE_MANAGER_BACKEND_UNAVAILABLE",
        "SECURITY_POLICY_BACKEND_UNAVAILABLE",
        "LOCATION_POLICY_BACKEND_UNAVAILABLE",
        "INJECTED_ERROR",
    }
)

_ALLOWED_STATUSES = frozenset({400, 403, 404, 408, 409, 429, 500, 502, 503, 504})

Api = Literal["procurement", "servicecontrol"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ApiFaults(_Strict):
    error_rate: float = Field(0.0, alias="errorRate", ge=0.0, le=1.0)
    statuses: list[int] = Field(default_factory=lambda: [503])
    latency_ms: int = Field(0, alias="latencyMs", ge=0, le=60_000)

    @field_validator("statuses")
    @classmethod
    def _known_statuses(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("statuses must name at least one HTTP status")
        unknown = sorted(set(value) - _ALLOWED_STATUSES)
        if unknown:
            raise ValueError(f"unsupported statuses {unknown}; use {sorted(_ALLOWED_STATUSES)}")
        return value


class ProcurementFaults(ApiFaults):
    # An incident, not a rate: for these providers the lists come back empty and every other
    # call answers 404 NOT_FOUND, as if Procurement had forgotten their accounts and entitlements.
    forget_providers: list[str] = Field(default_factory=list, alias="forgetProviders")


class ServiceControlFaults(ApiFaults):
    report_error_rate: float = Field(0.0, alias="reportErrorRate", ge=0.0, le=1.0)
    # Not a fault but an unconfirmed rule of Google's: refuse reports whose endTime is older than
    # this many seconds before the emulator's clock. None: no limit.
    max_lateness_seconds: int | None = Field(None, alias="maxLatenessSeconds", ge=0)


class NotificationFaults(_Strict):
    duplicate_rate: float = Field(0.0, alias="duplicateRate", ge=0.0, le=1.0)
    reorder: bool = False
    delay_ms: int = Field(0, alias="delayMs", ge=0, le=600_000)


class FaultSettings(_Strict):
    seed: int = 0
    procurement: ProcurementFaults = Field(default_factory=ProcurementFaults)
    servicecontrol: ServiceControlFaults = Field(default_factory=ServiceControlFaults)
    notifications: NotificationFaults = Field(default_factory=NotificationFaults)
    check_errors: dict[str, str] = Field(default_factory=dict, alias="checkErrors")

    @field_validator("check_errors")
    @classmethod
    def _known_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for consumer, code in value.items():
            if code not in INJECTABLE_CHECK_ERRORS:
                raise ValueError(
                    f"checkErrors[{consumer!r}]: unknown code {code!r}; "
                    f"use one of {sorted(INJECTABLE_CHECK_ERRORS)}"
                )
        return value

    def to_json(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


class FaultInjector:
    """Answers "should this call fail, and how?" from the current settings, reproducibly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(FaultSettings())

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(self, settings: FaultSettings) -> None:
        with self._lock:
            self._settings = settings
            self._rngs = {
                name: random.Random(f"{settings.seed}:{name}")
                for name in ("procurement", "servicecontrol", "reportErrors", "notifications")
            }

    def clear(self) -> None:
        self.configure(FaultSettings())

    def _api(self, api: Api) -> ApiFaults:
        return self._settings.procurement if api == "procurement" else self._settings.servicecontrol

    def injected_status(self, api: Api) -> int | None:
        """An HTTP status to answer instead of serving the call, or None to serve it."""
        faults = self._api(api)
        if faults.error_rate <= 0:
            return None
        with self._lock:
            rng = self._rngs[api]
            if rng.random() >= faults.error_rate:
                return None
            return rng.choice(faults.statuses)

    def forgets(self, provider: str) -> bool:
        """Whether Procurement answers `provider` as if it held none of its data."""
        forgotten = self._settings.procurement.forget_providers
        return bool(forgotten) and provider in forgotten

    def latency_seconds(self, api: Api) -> float:
        return self._api(api).latency_ms / 1000.0

    def fail_report_operation(self) -> bool:
        """Whether one report operation should come back in `reportErrors`."""
        rate = self._settings.servicecontrol.report_error_rate
        if rate <= 0:
            return False
        with self._lock:
            return self._rngs["reportErrors"].random() < rate

    def check_error_for(self, consumer_id: str) -> str | None:
        return self._settings.check_errors.get(consumer_id)

    def notification_rng(self) -> random.Random:
        """The notifier's own seeded generator (duplicates, reordering)."""
        return self._rngs["notifications"]
