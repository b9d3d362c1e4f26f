"""The console's forms (POST): decisions, replay, retry. Operators only; CSRF on every form.

Each answers 303 back to the page it came from with a one-time message (the outcome, or why
nothing was done): reloading the page never repeats the action.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from marketplace_saas.adapters.operators import Operator
from marketplace_saas.entrypoints.web.admin import operations
from marketplace_saas.entrypoints.web.admin.common import (
    AdminRoute,
    check_csrf,
    redirect,
    require_operator,
)
from marketplace_saas.entrypoints.web.app import get_container

router = APIRouter(prefix="/admin", route_class=AdminRoute)
Acting = Annotated[Operator, Depends(require_operator)]
Csrf = Annotated[str, Form(max_length=200)]
Version = Annotated[str, Form(max_length=200)]
Reason = Annotated[str, Form(max_length=2000)]
Back = Annotated[str, Form(max_length=2000)]


def _answer(request: Request, back: str, outcome: operations.Outcome) -> Response:
    return redirect(request, back, flash=("ok" if outcome.ok else "error", outcome.message))


def _decide(
    request: Request,
    operator: Operator,
    kind: str,
    resource_id: str,
    decision: str,
    form: tuple[str, str, str, str],
) -> Response:
    csrf_token, version, reason, back = form
    check_csrf(request, csrf_token)
    outcome = operations.decide(
        get_container(request),
        operator,
        kind,
        resource_id,
        decision,
        version=version,
        reason=reason,
    )
    return _answer(request, back or f"/admin/{kind}s/{resource_id}", outcome)


@router.post("/entitlements/{entitlement_id}/{decision}")
def decide_entitlement(
    request: Request,
    operator: Acting,
    entitlement_id: str,
    decision: str,
    csrf_token: Csrf = "",
    version: Version = "",
    reason: Reason = "",
    back: Back = "",
) -> Response:
    form = (csrf_token, version, reason, back)
    return _decide(request, operator, "entitlement", entitlement_id, decision, form)


@router.post("/accounts/{account_id}/{decision}")
def decide_account(
    request: Request,
    operator: Acting,
    account_id: str,
    decision: str,
    csrf_token: Csrf = "",
    version: Version = "",
    reason: Reason = "",
    back: Back = "",
) -> Response:
    form = (csrf_token, version, reason, back)
    return _decide(request, operator, "account", account_id, decision, form)


@router.post("/notifications/{event_id}/replay")
def replay(
    request: Request, operator: Acting, event_id: str, csrf_token: Csrf = "", back: Back = ""
) -> Response:
    check_csrf(request, csrf_token)
    outcome = operations.replay(get_container(request), operator, event_id)
    return _answer(request, back or f"/admin/notifications/{event_id}", outcome)


@router.post("/reports/{operation_id}/retry")
def retry_report(
    request: Request, operator: Acting, operation_id: str, csrf_token: Csrf = "", back: Back = ""
) -> Response:
    check_csrf(request, csrf_token)
    outcome = operations.retry_report(get_container(request), operator, operation_id)
    return _answer(request, back or "/admin/reports", outcome)
