"""How a provider decision is carried out, whoever asks: read, decide if still pending, read,
record. Which decisions there are, and when each is pending or taken, is `decisions`.

`run_entitlement_decision()` and `run_account_decision()`: the resource is re-read from the
Procurement API; if the decision is already taken the outcome is the `already` one and Google is
not called; otherwise Google is called, and a refusal classified as benign is accepted only when a
second read shows the decision taken. The API's state, the decision's audit row and one audit row
per Google call are then written in one short unit of work. `read_entitlement` and `read_account`
are the one way the procurement side reads from the API (each read audited through a `CallLog`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketplace_saas.adapters.procurement_errors import ProcurementError, benign_outcome
from marketplace_saas.domain.entitlements import AccountView, EntitlementView
from marketplace_saas.domain.errors import NothingToDecide, ResourceNotFound
from marketplace_saas.service.audit import CallLog, record_change
from marketplace_saas.service.procurement import records
from marketplace_saas.service.unit_of_work import App, UnitOfWork


@dataclass(frozen=True)
class ApprovalResult:
    kind: str  # account | entitlement
    resource_id: str
    outcome: str
    state: str | None  # the resource's state after the decision, as the API says


Condition = Callable[[EntitlementView], bool]


@dataclass(frozen=True)
class EntitlementDecision:
    """One kind of decision on an entitlement, and how to tell it is pending or taken."""

    action: str  # the Procurement API method, and the audit row's action
    pending: Condition  # Google waits for it: call
    done: Condition  # after our call: taken
    wanted: str  # why nothing can be decided when not pending
    outcome: str
    already: str
    already_done: Condition | None = None  # before our call: taken already (default: `done`)
    gone_is_done: bool = False  # a 404 after our call means taken (a rejection)


def save_calls(container: App, calls: CallLog, actor: str) -> None:
    if calls.calls:
        with container.unit_of_work() as uow:
            calls.flush(uow, actor=actor)


def record_entitlement(
    container: App,
    calls: CallLog,
    entitlement_id: str,
    view: EntitlementView | None,
    *,
    actor: str,
    action: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> None:
    def apply(uow: UnitOfWork, ctx: records.Context) -> None:
        records.apply_entitlement(
            uow,
            provider_id=container.settings.provider_id,
            entitlement_id=entitlement_id,
            view=view,
            ctx=ctx,
        )

    ids = {"account_id": view.account_id if view else None, "entitlement_id": entitlement_id}
    _record(container, calls, apply, ids, actor, action, outcome, details)


def read_entitlement(container: App, calls: CallLog, entitlement_id: str) -> EntitlementView | None:
    resource = calls.call(
        "get_entitlement",
        container.procurement.get_entitlement,
        entitlement_id,
        entitlement_id=entitlement_id,
    )
    return EntitlementView.from_api(resource) if resource is not None else None


def run_entitlement_decision(
    container: App,
    entitlement_id: str,
    decision: EntitlementDecision,
    call: Callable[[EntitlementView], None],
    *,
    actor: str,
    details: dict[str, Any] | None = None,
    already_done: Condition | None = None,
) -> ApprovalResult:
    """Take `decision` through `call(view)` unless it is taken already (`already_done`, else
    the decision's own); see the module docstring."""
    action, done, outcome, already = (
        decision.action,
        decision.done,
        decision.outcome,
        decision.already,
    )
    already_done = already_done or decision.already_done or done
    calls = CallLog(container.now)
    view = read_entitlement(container, calls, entitlement_id)
    if view is None:
        record_entitlement(container, calls, entitlement_id, None, actor=actor)
        raise ResourceNotFound("entitlement", entitlement_id)
    if not decision.pending(view):
        if already_done(view):
            record_entitlement(
                container, calls, entitlement_id, view, actor=actor, action=action, outcome=already
            )
            return ApprovalResult("entitlement", entitlement_id, already, view.state)
        record_entitlement(container, calls, entitlement_id, view, actor=actor)
        raise NothingToDecide("entitlement", entitlement_id, view.state, decision.wanted)
    refused: ProcurementError | None = None
    try:
        calls.call(action, call, view, entitlement_id=entitlement_id)
    except ProcurementError as exc:
        if benign_outcome(exc) is None:
            save_calls(container, calls, actor)
            raise
        refused = exc
    after = read_entitlement(container, calls, entitlement_id)
    finished = (after is None and decision.gone_is_done) or (after is not None and done(after))
    if refused is not None and not finished:
        record_entitlement(container, calls, entitlement_id, after, actor=actor)
        raise refused
    result = already if refused is not None else outcome
    record_entitlement(
        container,
        calls,
        entitlement_id,
        after,
        actor=actor,
        action=action,
        outcome=result,
        details=details,
    )
    return ApprovalResult("entitlement", entitlement_id, result, after.state if after else None)


def read_account(container: App, calls: CallLog, account_id: str) -> AccountView | None:
    resource = calls.call(
        "get_account", container.procurement.get_account, account_id, account_id=account_id
    )
    return AccountView.from_api(resource) if resource is not None else None


def record_account(
    container: App,
    calls: CallLog,
    view: AccountView,
    *,
    actor: str,
    action: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> None:
    def apply(uow: UnitOfWork, ctx: records.Context) -> None:
        records.apply_account(uow, provider_id=container.settings.provider_id, view=view, ctx=ctx)

    _record(container, calls, apply, {"account_id": view.id}, actor, action, outcome, details)


def _record(
    container: App,
    calls: CallLog,
    apply: Callable[[UnitOfWork, records.Context], None],
    ids: dict[str, str | None],
    actor: str,
    action: str | None,
    outcome: str,
    details: dict[str, Any] | None,
) -> None:
    """In one unit of work: what the API says (`apply`), the decision's audit row (when there
    is an `action`), and the audit rows of the Google calls."""
    ctx = records.Context(actor=actor, now=container.now())
    with container.unit_of_work() as uow:
        apply(uow, ctx)
        if action is not None:
            record_change(
                uow, action, actor=actor, at=ctx.now, outcome=outcome, details=details, **ids
            )
        calls.flush(uow, actor=actor)


@dataclass(frozen=True)
class AccountDecision:
    """One kind of decision on an account's `signup` approval: taken once it reads `target`."""

    action: str  # the Procurement API method, and the audit row's action
    target: str  # the approval's state once decided
    outcome: str
    already: str


def run_account_decision(
    container: App,
    account_id: str,
    decision: AccountDecision,
    call: Callable[[], None],
    *,
    actor: str,
    details: dict[str, Any] | None = None,
) -> ApprovalResult:
    """Take `decision` through `call()` unless the approval reads its target already."""
    action, target, already = decision.action, decision.target, decision.already
    calls = CallLog(container.now)
    view = read_account(container, calls, account_id)
    if view is None:
        save_calls(container, calls, actor)
        raise ResourceNotFound("account", account_id)
    if view.signup_state == target:
        record_account(container, calls, view, actor=actor, action=action, outcome=already)
        return ApprovalResult("account", account_id, already, view.signup_state)
    refused: ProcurementError | None = None
    try:
        calls.call(action, call, account_id=account_id)
    except ProcurementError as exc:
        if benign_outcome(exc) is None:
            save_calls(container, calls, actor)
            raise
        refused = exc
    after = read_account(container, calls, account_id)
    if after is None:
        save_calls(container, calls, actor)
        raise ResourceNotFound("account", account_id)
    if refused is not None and after.signup_state != target:
        record_account(container, calls, after, actor=actor)
        raise refused
    result = already if refused is not None else decision.outcome
    record_account(
        container, calls, after, actor=actor, action=action, outcome=result, details=details
    )
    return ApprovalResult("account", account_id, result, after.signup_state)
