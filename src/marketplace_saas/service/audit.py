"""The audit log: every change we make to our records, every call we make to Google.

Google calls happen outside any database transaction, so `CallLog` remembers them (action,
target, outcome, duration) and `CallLog.flush(uow, ...)` writes them in the unit of work that
records their result. `record_change` writes one change row in the caller's unit of work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from marketplace_saas.adapters.procurement_errors import ProcurementError, benign_outcome
from marketplace_saas.service.unit_of_work import UnitOfWork

T = TypeVar("T")


def record_change(
    uow: UnitOfWork,
    action: str,
    *,
    actor: str,
    at: datetime,
    account_id: str | None = None,
    entitlement_id: str | None = None,
    event_id: str | None = None,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> None:
    uow.audit.add(
        [
            {
                "at": at,
                "kind": "change",
                "action": action,
                "actor": actor,
                "account_id": account_id,
                "entitlement_id": entitlement_id,
                "event_id": event_id,
                "outcome": outcome,
                "details": details or {},
            }
        ]
    )


@dataclass
class Call:
    action: str
    at: datetime
    outcome: str
    seconds: float
    account_id: str | None
    entitlement_id: str | None
    details: dict[str, Any]


@dataclass
class CallLog:
    """The Google calls of one unit of work, written to the audit log when it commits."""

    now: Callable[[], datetime]
    calls: list[Call] = field(default_factory=list)

    def call(
        self,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        account_id: str | None = None,
        entitlement_id: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Run one gateway call and remember it, whatever its outcome."""
        at = self.now()
        started = time.perf_counter()
        details: dict[str, Any] = {k: v for k, v in kwargs.items() if isinstance(v, str)}
        try:
            result = fn(*args, **kwargs)
        except ProcurementError as exc:
            benign = benign_outcome(exc)
            outcome = (
                f"benign:{benign}"
                if benign
                else f"error:{exc.status or exc.status_code or type(exc).__name__}"
            )
            details["error"] = str(exc)
            self._add(action, at, outcome, started, account_id, entitlement_id, details)
            raise
        except Exception as exc:
            details["error"] = f"{type(exc).__name__}: {exc}"
            self._add(action, at, "error:exception", started, account_id, entitlement_id, details)
            raise
        outcome = "ok"
        if result is None and action.startswith("get_"):
            outcome = "benign:not_found"
        self._add(action, at, outcome, started, account_id, entitlement_id, details)
        return result

    def start(self) -> tuple[datetime, float]:
        """Mark the start of a call recorded later with `record` (a streamed listing)."""
        return self.now(), time.perf_counter()

    def record(
        self,
        action: str,
        started: tuple[datetime, float],
        *,
        outcome: str,
        details: dict[str, Any] | None = None,
        account_id: str | None = None,
        entitlement_id: str | None = None,
    ) -> None:
        at, clock = started
        self._add(action, at, outcome, clock, account_id, entitlement_id, details or {})

    def _add(
        self,
        action: str,
        at: datetime,
        outcome: str,
        started: float,
        account_id: str | None,
        entitlement_id: str | None,
        details: dict[str, Any],
    ) -> None:
        seconds = round(time.perf_counter() - started, 6)
        self.calls.append(Call(action, at, outcome, seconds, account_id, entitlement_id, details))

    def flush(self, uow: UnitOfWork, *, actor: str, event_id: str | None = None) -> None:
        """Write the remembered calls in the caller's unit of work.

        The list is kept: if that transaction rolls back, the failure path writes them again.
        """
        if not self.calls:
            return
        uow.audit.add(
            [
                {
                    "at": call.at,
                    "kind": "api_call",
                    "action": call.action,
                    "actor": actor,
                    "account_id": call.account_id,
                    "entitlement_id": call.entitlement_id,
                    "event_id": event_id,
                    "outcome": call.outcome[:50],
                    "details": {**call.details, "seconds": call.seconds},
                }
                for call in self.calls
            ],
        )
