"""The console's pages (GET): overview, accounts, entitlements, approvals, notifications, reports.

Each page reads one read model of `service.console` in a short session and renders it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from marketplace_saas.adapters.operators import Operator
from marketplace_saas.domain.usage import recent_hours
from marketplace_saas.entrypoints.web.admin import charts, health, timeline
from marketplace_saas.entrypoints.web.admin.common import (
    ADMIN_DIR,
    AdminRoute,
    NotFound,
    RowId,
    render,
    require_viewer,
)
from marketplace_saas.entrypoints.web.app import get_container
from marketplace_saas.service.console import activity
from marketplace_saas.service.console import records as queries

router = APIRouter(prefix="/admin", route_class=AdminRoute)
Viewer = Annotated[Operator, Depends(require_viewer)]
Text = Annotated[str | None, Query(max_length=300)]
STATIC = {"admin.css": "text/css", "admin.js": "text/javascript"}
MAX_CHART_HOURS = 24 * 14


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _found(data: dict[str, Any] | None, missing: str) -> dict[str, Any]:
    """The read model, or 404 saying what is `missing`."""
    if data is None:
        raise NotFound(missing)
    return data


def _readable(entitlement: dict[str, Any]) -> dict[str, Any]:
    """The entitlement's read model with its timeline as a person reads it."""
    return {**entitlement, "timeline": timeline.readable(entitlement["timeline"])}


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The console's stylesheet and script (public: they hold no data)."""
    if name not in STATIC:
        raise NotFound("No such file.")
    response = FileResponse(ADMIN_DIR / "static" / name, media_type=STATIC[name])
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@router.get("", name="admin_overview")
def overview(request: Request, operator: Viewer) -> Response:
    container = get_container(request)
    with container.console() as reads:
        data = queries.overview(reads, container.now())
    return render(request, "admin/overview.html", data=data, section="overview")


@router.get("/health")
def health_fragment(request: Request, operator: Viewer) -> Response:
    checks = health.run_checks(get_container(request))
    return render(request, "admin/_health.html", checks=checks)


@router.get("/accounts")
def accounts(request: Request, operator: Viewer, q: Text = None, after: Text = None) -> Response:
    container = get_container(request)
    with container.console() as reads:
        page = queries.list_accounts(reads, q=_blank(q), after=_blank(after))
    return render(request, "admin/accounts.html", page=page, q=q or "", section="accounts")


@router.get("/accounts/{account_id}")
def account(request: Request, operator: Viewer, account_id: str) -> Response:
    container = get_container(request)
    with container.console() as reads:
        data = queries.account_detail(reads, account_id)
    return render(
        request,
        "admin/account.html",
        account=_found(data, f"There is no account {account_id!r} in our records."),
        section="accounts",
    )


@router.get("/entitlements")
def entitlements(
    request: Request,
    operator: Viewer,
    state: Text = None,
    product: Text = None,
    plan: Text = None,
    account: Text = None,
    after: Text = None,
) -> Response:
    container = get_container(request)
    filters = {
        "state": _blank(state),
        "product": _blank(product),
        "plan": _blank(plan),
        "account": _blank(account),
    }
    with container.console() as reads:
        page = queries.list_entitlements(
            reads,
            state=filters["state"],
            product=filters["product"],
            plan=filters["plan"],
            account=filters["account"],
            after=_blank(after),
        )
        choices = queries.filter_choices(reads)
    return render(
        request,
        "admin/entitlements.html",
        page=page,
        filters=filters,
        choices=choices,
        section="entitlements",
    )


@router.get("/entitlements/{entitlement_id}")
def entitlement(
    request: Request,
    operator: Viewer,
    entitlement_id: str,
    hours: Annotated[int, Query(ge=1, le=MAX_CHART_HOURS)] = 48,
) -> Response:
    container = get_container(request)
    start, end = recent_hours(container.now(), hours)
    with container.console() as reads:
        data = queries.entitlement_detail(reads, entitlement_id)
        series = activity.hourly_usage(reads, entitlement_id, start=start, end=end) if data else {}
    return render(
        request,
        "admin/entitlement.html",
        e=_readable(_found(data, f"There is no entitlement {entitlement_id!r} in our records.")),
        charts=charts.build_charts(series, start, end),
        hours=hours,
        section="entitlements",
    )


@router.get("/approvals")
def approvals(request: Request, operator: Viewer) -> Response:
    container = get_container(request)
    with container.console() as reads:
        queue = activity.approvals_queue(reads)
    return render(request, "admin/approvals.html", queue=queue, section="approvals")


@router.get("/notifications")
def notifications(
    request: Request, operator: Viewer, status: Text = None, before: RowId = None
) -> Response:
    container = get_container(request)
    status = _blank(status)
    with container.console() as reads:
        page = activity.list_notifications(reads, status=status, before=before)
    return render(
        request,
        "admin/notifications.html",
        page=page,
        status=status or "",
        statuses=queries.INBOX_STATUSES,
        section="notifications",
    )


@router.get("/notifications/{event_id}")
def notification(request: Request, operator: Viewer, event_id: str) -> Response:
    container = get_container(request)
    with container.console() as reads:
        data = activity.notification_detail(reads, event_id)
    return render(
        request,
        "admin/notification.html",
        n=_found(data, f"There is no notification {event_id!r} in the inbox."),
        section="notifications",
    )


@router.get("/reports")
def reports(
    request: Request,
    operator: Viewer,
    status: Text = None,
    entitlement: Text = None,
    before: RowId = None,
) -> Response:
    container = get_container(request)
    status, entitlement = _blank(status), _blank(entitlement)
    with container.console() as reads:
        page = activity.list_reports(reads, status=status, entitlement=entitlement, before=before)
    return render(
        request,
        "admin/reports.html",
        page=page,
        status=status or "",
        entitlement=entitlement or "",
        statuses=queries.REPORT_STATUSES,
        section="reports",
    )


@router.get("/api")
def api_page(request: Request, operator: Viewer) -> Response:
    """The JSON API's endpoints, read from its OpenAPI document."""
    from marketplace_saas.entrypoints.web.api_v1 import openapi_document

    document = openapi_document(request.app)
    return render(request, "admin/api.html", document=document, section="api")
