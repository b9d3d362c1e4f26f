"""URL -> handler for the Procurement API v1 (paths of the discovery document).

Custom verbs (`.../entitlements/{id}:approve`) arrive as one path segment, since a path parameter
matches `[^/]+`; `responses.split_action` separates the id from the verb. Every handler, reading or
changing state, runs on the event loop: a backend operation is short and in memory, and publishing a
notification only queues it (the notifier delivers from its own thread), so a thread-pool hop would
cost more than the call (a quarter of an approval's CPU). The control API keeps its thread pool:
seeding and moving the clock can take long.

`hot_endpoint` picks, without the router, the handler of the two calls a provider's backend makes
for each notification (`entitlements.get`, and an entitlement's custom verb such as
`:approvePlanChange`); `middleware.HotRouteMiddleware` serves them with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Scope

from marketplace_emulator.procurement import responses as rs
from marketplace_emulator.procurement.exceptions import InvalidArgument, NotFound
from marketplace_emulator.procurement.models import ProcurementBackend

router = APIRouter(tags=["procurement"])


def backend(request: Request) -> ProcurementBackend:
    emulator = request.app.state.emulator
    procurement: ProcurementBackend = emulator.procurement
    return procurement


def _unknown_verb(verb: str, path: str) -> NotFound:
    if verb:
        return NotFound(f"Method ':{verb}' not found for {path}.")
    return NotFound(f"The requested URL {path} was not found on this server.")


@router.get("/v1/providers/{provider}/accounts")
async def list_accounts(request: Request, provider: str) -> JSONResponse:
    rs.check_query(request, "pageSize", "pageToken", "page_size", "page_token")
    size = rs.query_int(request, "pageSize") or rs.query_int(request, "page_size")
    token = request.query_params.get("pageToken") or request.query_params.get("page_token") or ""
    accounts, next_token = backend(request).list_accounts(provider, size, token)
    return JSONResponse(rs.list_accounts(accounts, next_token))


@router.get("/v1/providers/{provider}/accounts/{account}")
async def get_account(request: Request, provider: str, account: str) -> JSONResponse:
    rs.check_query(request, "view")
    full = rs.account_view(request) == "ACCOUNT_VIEW_FULL"
    return JSONResponse(backend(request).get_account(provider, account).to_json(full=full))


@router.post("/v1/providers/{provider}/accounts/{segment}")
async def account_action(request: Request, provider: str, segment: str) -> JSONResponse:
    account, verb = rs.split_action(segment, "account")
    rs.check_query(request)
    body = await rs.json_body(request)
    procurement = backend(request)
    call: Callable[[], None]
    if verb == "approve":
        msg = rs.parse_message(body, rs.APPROVE_ACCOUNT)

        def call() -> None:
            procurement.approve_account(
                provider,
                account,
                msg.get("approvalName", ""),
                msg.get("reason", ""),
                msg.get("properties"),
            )

    elif verb == "reject":
        msg = rs.parse_message(body, rs.REJECT_ACCOUNT)

        def call() -> None:
            procurement.reject_account(
                provider, account, msg.get("approvalName", ""), msg.get("reason", "")
            )

    elif verb == "reset":
        rs.parse_message(body, rs.RESET_ACCOUNT)

        def call() -> None:
            procurement.reset_account(provider, account)

    else:
        raise _unknown_verb(verb, request.url.path)
    call()
    return JSONResponse({})


@router.get("/v1/providers/{provider}/entitlements")
async def list_entitlements(request: Request, provider: str) -> JSONResponse:
    rs.check_query(request, "filter", "pageSize", "pageToken", "page_size", "page_token")
    size = rs.query_int(request, "pageSize") or rs.query_int(request, "page_size")
    token = request.query_params.get("pageToken") or request.query_params.get("page_token") or ""
    text = request.query_params.get("filter", "")
    found, next_token = backend(request).list_entitlements(provider, text, size, token)
    return JSONResponse(rs.list_entitlements(found, next_token))


@router.get("/v1/providers/{provider}/entitlements/{entitlement}")
async def get_entitlement(request: Request, provider: str, entitlement: str) -> JSONResponse:
    rs.check_query(request)
    return JSONResponse(backend(request).get_entitlement(provider, entitlement).to_json())


@router.patch("/v1/providers/{provider}/entitlements/{entitlement}")
async def patch_entitlement(request: Request, provider: str, entitlement: str) -> JSONResponse:
    rs.check_query(request, "updateMask", "update_mask")
    rs.update_mask(request)
    body = rs.parse_message(await rs.json_body(request), rs.ENTITLEMENT_FIELDS)
    message = body.get("messageToUser", "")
    procurement = backend(request)
    updated = procurement.patch_entitlement(provider, entitlement, message)
    return JSONResponse(updated.to_json())


def _entitlement_call(
    procurement: ProcurementBackend, provider: str, entitlement: str, verb: str, body: Any
) -> Callable[[], None] | None:
    if verb == "approve":
        msg = rs.parse_message(body, rs.APPROVE_ENTITLEMENT)
        migrated = msg.get("entitlementMigrated", "")
        return lambda: procurement.approve_entitlement(provider, entitlement, migrated)
    if verb == "reject":
        msg = rs.parse_message(body, rs.REJECT_ENTITLEMENT)
        reason = msg.get("reason", "")
        return lambda: procurement.reject_entitlement(provider, entitlement, reason)
    if verb in ("approvePlanChange", "rejectPlanChange"):
        schema = rs.APPROVE_PLAN_CHANGE if verb == "approvePlanChange" else rs.REJECT_PLAN_CHANGE
        msg = rs.parse_message(body, schema)
        pending = msg.get("pendingPlanName", "")
        if not pending:
            raise InvalidArgument("pendingPlanName is required.")
        if verb == "approvePlanChange":
            return lambda: procurement.approve_plan_change(provider, entitlement, pending)
        reason = msg.get("reason", "")
        return lambda: procurement.reject_plan_change(provider, entitlement, pending, reason)
    if verb == "suspend":
        msg = rs.parse_message(body, rs.SUSPEND_ENTITLEMENT)
        reason = msg.get("reason", "")
        return lambda: procurement.suspend_entitlement(provider, entitlement, reason)
    return None


@router.post("/v1/providers/{provider}/entitlements/{segment}")
async def entitlement_action(request: Request, provider: str, segment: str) -> JSONResponse:
    entitlement, verb = rs.split_action(segment, "entitlement")
    rs.check_query(request)
    body = await rs.json_body(request)
    call = _entitlement_call(backend(request), provider, entitlement, verb, body)
    if call is None:
        raise _unknown_verb(verb, request.url.path)
    call()
    return JSONResponse({})


HotEndpoint = Callable[[Request], Awaitable[JSONResponse]]

# The router's own routes for the two hot calls: their methods, path patterns and handlers.
_HOT_ROUTES = tuple(
    (method, route.path_regex, route.endpoint)
    for route in router.routes
    if isinstance(route, APIRoute) and route.endpoint in (get_entitlement, entitlement_action)
    for method in route.methods or ()
)


def hot_endpoint(scope: Scope) -> HotEndpoint | None:
    """The handler the router would choose for `GET .../entitlements/{id}` or
    `POST .../entitlements/{id}:{verb}`, bound to its path parameters; None for any other call.

    The path is matched with those routes' own patterns (their parameters are plain strings); no
    route before these two matches such a path, so the choice is the router's.
    """
    if scope.get("root_path"):
        return None
    for method, pattern, endpoint in _HOT_ROUTES:
        if scope["method"] == method and (found := pattern.match(scope["path"])):
            return partial(endpoint, **found.groupdict())
    return None
