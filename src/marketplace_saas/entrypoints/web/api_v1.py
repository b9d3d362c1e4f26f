"""The console's JSON API under `/api/v1` (docs/admin.md), described by `/api/v1/openapi.json`.

Authentication: the console's session cookie, or HTTP Basic with an operator's name and password
(for scripts). 401 without either; 403 for a viewer calling an action. Actions take a JSON body
(a cross-site form cannot send one), answer the outcome, and 409 when nothing was done because
the resource was not waiting for that decision or changed since `version`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field

from marketplace_saas.adapters.operators import Operator
from marketplace_saas.domain.usage import recent_hours
from marketplace_saas.entrypoints.web.admin import health, operations
from marketplace_saas.entrypoints.web.admin.common import (
    AdminProblem,
    AdminRoute,
    NotFound,
    RowId,
    require_operator,
    require_viewer,
    secure_headers,
)
from marketplace_saas.entrypoints.web.app import get_container
from marketplace_saas.service.console import activity
from marketplace_saas.service.console import records as queries

PREFIX = "/api/v1"
router = APIRouter(prefix=PREFIX, route_class=AdminRoute, tags=["console API"])
Viewer = Annotated[Operator, Depends(require_viewer)]
Acting = Annotated[Operator, Depends(require_operator)]
Text = Annotated[str | None, Query(max_length=300)]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]


class UnsupportedBody(AdminProblem):
    status_code = 415
    title = "Send a JSON body (Content-Type: application/json)"


class Decision(BaseModel):
    """An operator's decision; `version` (from the GET) refuses it if the resource changed."""

    version: str | None = Field(None, max_length=200)
    reason: str = Field("", max_length=operations.MAX_REASON)


def _json(data: Any, status_code: int = 200) -> Response:
    return secure_headers(JSONResponse(jsonable_encoder(data), status_code=status_code))


def _found(data: dict[str, Any] | None, missing: str) -> Response:
    """The read model as JSON, or 404 saying what is `missing`."""
    if data is None:
        raise NotFound(missing)
    return _json(data)


def _require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedBody("Actions take a JSON body.")


def _outcome(outcome: operations.Outcome) -> Response:
    return _json(outcome.as_dict(), outcome.status_code)


@router.get("/overview", summary="Counts by state, waiting approvals, recent notifications, usage")
def overview(request: Request, operator: Viewer) -> Response:
    container = get_container(request)
    with container.console() as reads:
        return _json(queries.overview(reads, container.now()))


@router.get("/health", summary="Database, Pub/Sub and Procurement API checks (bounded wait)")
def health_checks(request: Request, operator: Viewer) -> Response:
    checks = health.run_checks(get_container(request))
    return _json([check.__dict__ for check in checks])


@router.get("/accounts", summary="Accounts with their customer; search and keyset pages")
def accounts(
    request: Request, operator: Viewer, q: Text = None, after: Text = None, limit: Limit = 50
) -> Response:
    with get_container(request).console() as reads:
        return _json(queries.list_accounts(reads, q=q, after=after, limit=limit).as_dict())


@router.get("/accounts/{account_id}", summary="One account: sign-up data, entitlements, audit")
def account(request: Request, operator: Viewer, account_id: str) -> Response:
    with get_container(request).console() as reads:
        data = queries.account_detail(reads, account_id)
    return _found(data, f"no account {account_id!r}")


@router.get("/entitlements", summary="Entitlements filtered by state, product, plan, account")
def entitlements(
    request: Request,
    operator: Viewer,
    state: Text = None,
    product: Text = None,
    plan: Text = None,
    account: Text = None,
    after: Text = None,
    limit: Limit = 50,
) -> Response:
    with get_container(request).console() as reads:
        page = queries.list_entitlements(
            reads,
            state=state,
            product=product,
            plan=plan,
            account=account,
            after=after,
            limit=limit,
        )
    return _json(page.as_dict())


@router.get("/entitlements/{entitlement_id}", summary="One entitlement with plan history, timeline")
def entitlement(request: Request, operator: Viewer, entitlement_id: str) -> Response:
    with get_container(request).console() as reads:
        data = queries.entitlement_detail(reads, entitlement_id)
    return _found(data, f"no entitlement {entitlement_id!r}")


@router.get("/entitlements/{entitlement_id}/usage", summary="Hourly usage: ingested and reported")
def usage(
    request: Request,
    operator: Viewer,
    entitlement_id: str,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 48,
) -> Response:
    container = get_container(request)
    start, end = recent_hours(container.now(), hours)
    with container.console() as reads:
        series = activity.hourly_usage(reads, entitlement_id, start=start, end=end)
    data = {
        metric: [
            {"hour": hour, **{k: str(v) for k, v in cell.items()}}
            for hour, cell in sorted(cells.items())
        ]
        for metric, cells in series.items()
    }
    return _json({"start": start, "end": end, "metrics": data})


@router.get("/approvals", summary="Pending accounts, entitlements and plan changes")
def approvals(request: Request, operator: Viewer) -> Response:
    with get_container(request).console() as reads:
        return _json(activity.approvals_queue(reads))


@router.get("/notifications", summary="The inbox, newest first; filter by status")
def notifications(
    request: Request,
    operator: Viewer,
    status: Text = None,
    before: RowId = None,
    limit: Limit = 50,
) -> Response:
    with get_container(request).console() as reads:
        page = activity.list_notifications(reads, status=status, before=before, limit=limit)
    return _json(page.as_dict())


@router.get("/notifications/{event_id}", summary="One notification: payload, error, traceback")
def notification(request: Request, operator: Viewer, event_id: str) -> Response:
    with get_container(request).console() as reads:
        data = activity.notification_detail(reads, event_id)
    return _found(data, f"no notification {event_id!r}")


@router.get("/usage-reports", summary="The report ledger; filter by status and entitlement")
def reports(
    request: Request,
    operator: Viewer,
    status: Text = None,
    entitlement: Text = None,
    before: RowId = None,
    limit: Limit = 50,
) -> Response:
    with get_container(request).console() as reads:
        page = activity.list_reports(
            reads, status=status, entitlement=entitlement, before=before, limit=limit
        )
    return _json(page.as_dict())


def _decide(
    request: Request, operator: Operator, kind: str, resource_id: str, decision: str, body: Decision
) -> Response:
    _require_json(request)
    container = get_container(request)
    return _outcome(
        operations.decide(
            container,
            operator,
            kind,
            resource_id,
            decision,
            version=body.version,
            reason=body.reason,
        )
    )


@router.post(
    "/entitlements/{entitlement_id}/{decision}",
    summary="approve | reject | approve-plan-change | reject-plan-change (reason for rejects)",
)
def decide_entitlement(
    request: Request,
    operator: Acting,
    entitlement_id: str,
    decision: str,
    body: Annotated[Decision, Body()],
) -> Response:
    return _decide(request, operator, "entitlement", entitlement_id, decision, body)


@router.post("/accounts/{account_id}/{decision}", summary="approve | reject (reason required)")
def decide_account(
    request: Request,
    operator: Acting,
    account_id: str,
    decision: str,
    body: Annotated[Decision, Body()],
) -> Response:
    return _decide(request, operator, "account", account_id, decision, body)


@router.post("/notifications/{event_id}/replay", summary="Process a stored notification again")
def replay(request: Request, operator: Acting, event_id: str) -> Response:
    _require_json(request)
    return _outcome(operations.replay(get_container(request), operator, event_id))


@router.post("/usage-reports/{operation_id}/retry", summary="Send unfinished reports now")
def retry_report(request: Request, operator: Acting, operation_id: str) -> Response:
    _require_json(request)
    return _outcome(operations.retry_report(get_container(request), operator, operation_id))


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the `/api/v1` routes only."""
    routes = [c for c in iter_route_contexts(app.routes) if (c.path or "").startswith(PREFIX)]
    return get_openapi(
        title="marketplace-saas console API",
        version="1",
        description=__doc__ or "",
        routes=routes,
    )


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, operator: Viewer) -> Response:
    return _json(openapi_document(request.app))
