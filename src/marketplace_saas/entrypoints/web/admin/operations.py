"""Operator actions shared by the console's forms and the JSON API, with one outcome type.

    decide(container, operator, kind, resource_id, decision, version=..., reason=...)
    replay(container, operator, event_id)
    retry_report(container, operator, operation_id)

A decision first compares the version the operator saw (`service.console.records.current_version`:
state and when our record last changed) with our record now: a stale page is refused before Google
is called. The service (`service.procurement.decisions`, the one home of every decision) then
re-reads the resource from the Procurement API and acts only if it still waits for that
decision. Every error becomes an `Outcome` with an HTTP status and a sentence for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from marketplace_saas.adapters.operators import Operator
from marketplace_saas.adapters.procurement_errors import ProcurementError, TransientProcurementError
from marketplace_saas.domain.errors import NothingToDecide, ResourceNotFound
from marketplace_saas.service.audit import record_change
from marketplace_saas.service.console.records import current_version
from marketplace_saas.service.procurement import decisions

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)
MAX_REASON = 500

ENTITLEMENT_DECISIONS: dict[str, tuple[bool, str]] = {
    # decision: (needs a reason, label)
    "approve": (False, "approved"),
    "reject": (True, "rejected"),
    "approve-plan-change": (False, "plan change approved"),
    "reject-plan-change": (True, "plan change rejected"),
}
ACCOUNT_DECISIONS: dict[str, tuple[bool, str]] = {
    "approve": (False, "approved"),
    "reject": (True, "rejected"),
}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int
    message: str
    state: str | None = None
    detail: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "state": self.state, **(self.detail or {})}


def decide(
    container: Container,
    operator: Operator,
    kind: str,
    resource_id: str,
    decision: str,
    *,
    version: str | None,
    reason: str = "",
) -> Outcome:
    """Approve or reject an account, an entitlement or a plan change, as `operator`."""
    table = ACCOUNT_DECISIONS if kind == "account" else ENTITLEMENT_DECISIONS
    if decision not in table:
        return Outcome(False, 404, f"Unknown action {decision!r}.")
    needs_reason, label = table[decision]
    reason = reason.strip()
    if needs_reason and not reason:
        return Outcome(False, 422, "A reason is required to reject; nothing was done.")
    if len(reason) > MAX_REASON:
        return Outcome(False, 422, f"The reason is longer than {MAX_REASON} characters.")
    with container.console() as reads:
        current = current_version(reads, kind, resource_id)
    if current is None:
        return Outcome(False, 404, f"There is no {kind} {resource_id!r} in our records.")
    if version is not None and version != current:
        seen, now = version.split("|", 1)[0], (current or "").split("|", 1)[0]
        return Outcome(
            False,
            409,
            f"This {kind} changed since you opened the page (it was {seen or 'unknown'}, it is "
            f"now {now or 'unknown'}). Nothing was done: review it and decide again.",
            state=now,
        )
    bound = log.bind(operator=operator.name, kind=kind, resource_id=resource_id, decision=decision)
    try:
        result = decisions.decide_as_operator(
            container, kind, resource_id, decision, actor=operator.actor, reason=reason
        )
    except ResourceNotFound:
        return Outcome(False, 404, f"Google has no {kind} {resource_id!r} (deleted?).")
    except NothingToDecide as exc:
        return Outcome(False, 409, f"Nothing was done: {exc}.", state=exc.state)
    except TransientProcurementError as exc:
        bound.warning("admin.decision_unavailable", error=str(exc))
        return Outcome(
            False, 503, f"Google could not be reached; nothing changed. Try again. ({exc})"
        )
    except ProcurementError as exc:
        bound.warning("admin.decision_refused", error=str(exc))
        return Outcome(False, 502, f"Google refused: {exc}")
    bound.info("admin.decided", outcome=result.outcome, state=result.state)
    done = label if result.outcome in ("approved", "rejected") else result.outcome.replace("_", " ")
    return Outcome(
        True,
        200,
        f"{kind.capitalize()} {resource_id}: {done}. Google now says {result.state or 'gone'}.",
        state=result.state,
        detail={"outcome": result.outcome},
    )


def replay(container: Container, operator: Operator, event_id: str) -> Outcome:
    """Process a stored notification again, and record who asked."""
    from marketplace_saas.service.procurement.inbox import replay as replay_notification

    try:
        result = replay_notification(container, event_id)
    except LookupError:
        return Outcome(False, 404, f"There is no notification {event_id!r} in the inbox.")
    with container.unit_of_work() as uow:
        record_change(
            uow,
            "replay_notification",
            actor=operator.actor,
            at=container.now(),
            event_id=event_id,
            outcome=result.status,
            details={"error": result.error} if result.error else None,
        )
    log.info("admin.replayed", operator=operator.name, event_id=event_id, status=result.status)
    ok = result.status in ("processed", "ignored")
    message = f"Notification {event_id} replayed: {result.status}."
    if result.error:
        message += f" Error: {result.error}"
    return Outcome(ok, 200 if ok else 409, message, state=result.status)


def retry_report(container: Container, operator: Operator, operation_id: str) -> Outcome:
    """Send unfinished reports now (`pending`/`sent` rows are re-sent with the same operationId)."""
    status = _report_status(container, operation_id)
    if status is None:
        return Outcome(False, 404, f"There is no usage report {operation_id!r}.")
    if status not in ("pending", "sent"):
        why = {
            "accepted": "Google accepted it; sending it again would change nothing.",
            "rejected": (
                "Google rejected it; the same operation would be rejected again. Fix the cause "
                "(see the error) and report the usage in a later window."
            ),
            "skipped": "there was nothing to report in this window.",
        }.get(status, "")
        return Outcome(False, 409, f"Report {operation_id} is {status}: {why}", state=status)
    from marketplace_saas.service.metering.report import report_usage

    summary = report_usage(container, actor=operator.actor)
    state = _report_status(container, operation_id)
    log.info("admin.report_retried", operator=operator.name, operation_id=operation_id, state=state)
    ok = state == "accepted"
    return Outcome(
        ok,
        200 if ok else 502,
        f"Report {operation_id}: {state} (this run: {summary.accepted} accepted, "
        f"{summary.rejected} rejected, {summary.retrying} to retry).",
        state=state,
    )


def _report_status(container: Container, operation_id: str) -> str | None:
    with container.console() as reads:
        report = reads.report(operation_id)
    return str(report["status"]) if report is not None else None
