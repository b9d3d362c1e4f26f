"""Sign-in and sign-out of the console.

GET  /admin/login     the form (an anonymous session carries its CSRF token)
POST /admin/login     name + password: a new session (new CSRF token), 303 to `next`
POST /admin/logout    ends the session (its row is revoked: the cookie is dead on every replica)

Failed sign-ins are throttled (`service.sign_in`): 429 with Retry-After and the form saying how
long to wait.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from marketplace_saas.adapters.operators import MAX_PASSWORD, Operator
from marketplace_saas.entrypoints.web.admin.common import (
    AdminRoute,
    TooManyAttempts,
    _codec,
    authenticate,
    check_csrf,
    directory,
    read_session,
    redirect,
    render,
    require_viewer,
    secure_headers,
    signed_in,
    write_session,
)
from marketplace_saas.entrypoints.web.app import get_container
from marketplace_saas.entrypoints.web.security import (
    CSRF_FIELD,
    clear_session_cookie,
    new_csrf_token,
)
from marketplace_saas.service import sign_in

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/admin", route_class=AdminRoute)


def _safe_next(value: str | None) -> str:
    """Only a console path: never another site (`//evil`, `https://...`)."""
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


def _form(request: Request, status_code: int = 200, **context: object) -> Response:
    container = get_container(request)
    operators = directory(container)
    return render(
        request,
        "admin/login.html",
        status_code,
        sandbox_default=operators.sandbox_default,
        no_operators=len(operators) == 0,
        csrf_field=CSRF_FIELD,
        **context,
    )


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if signed_in(request) is not None:
        return redirect(request, _safe_next(next))
    return _form(request, next=_safe_next(next), name="")


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/admin",
) -> Response:
    check_csrf(request, csrf_token)
    try:
        operator = authenticate(request, name.strip(), password, method="form")
    except TooManyAttempts as wait:
        answer = _form(request, 429, next=_safe_next(next), name=name, error=wait.message)
        answer.headers["Retry-After"] = str(wait.retry_after)
        return answer
    if operator is None:
        return _form(
            request,
            401,
            next=_safe_next(next),
            name=name,
            error="That name and password do not match an operator.",
        )
    log.info("admin.signed_in", operator=operator.name, role=operator.role)
    container = get_container(request)
    session_id = sign_in.start_session(container, operator, directory(container))
    response = redirect(request, _safe_next(next))
    data = {"op": operator.name, "sid": session_id, "csrf": new_csrf_token()}
    write_session(request, response, data)
    return response


@router.post("/logout")
def logout(
    request: Request,
    operator: Annotated[Operator, Depends(require_viewer)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(request, csrf_token)
    sign_in.end_session(get_container(request), read_session(request).get("sid"))
    log.info("admin.signed_out", operator=operator.name)
    response = redirect(request, "/admin/login")
    _, cookie = _codec(get_container(request))
    clear_session_cookie(response, cookie)
    return secure_headers(response)
