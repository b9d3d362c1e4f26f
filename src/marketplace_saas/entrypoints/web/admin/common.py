"""What every console route shares: the signed session, who is signed in, templates, answers.

Sign-in state lives in a signed cookie (`mps_admin`, itsdangerous via `web.security`) holding the
operator's name, a session id and a CSRF token; the session's row in the database decides whether
it is still valid (`service.sign_in`: logout and removal from ADMIN_OPERATORS end it on every
replica), and the operator's role is looked up in the configuration on every request. Failed
sign-ins, by form or HTTP Basic, are throttled per operator and per client address.

Routes use `AdminRoute`, which turns the exceptions below into answers: `SignInRequired` -> 303
to the sign-in page (401 for `/api/v1`), `Forbidden` -> 403, `NotFound` -> 404,
`TooManyAttempts` -> 429 (with Retry-After), as a page for the console and as JSON for the API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader

from marketplace_saas.adapters.operators import Operator, OperatorDirectory
from marketplace_saas.entrypoints.web.app import TEMPLATES_DIR, get_container
from marketplace_saas.entrypoints.web.security import (
    CookieSettings,
    SessionCodec,
    csrf_matches,
    new_csrf_token,
    set_session_cookie,
)
from marketplace_saas.service import sign_in
from marketplace_saas.service.procurement import sync_guard

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)

ADMIN_DIR = Path(__file__).parent
SESSION_SECONDS = 8 * 3600
COOKIE = "mps_admin"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# A row id from a page link (`before=`): bounded to what a BIGINT holds, so junk is a 422.
RowId = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


class AdminProblem(Exception):
    status_code = 400
    title = "Something is wrong"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class SignInRequired(AdminProblem):
    status_code = 401
    title = "Sign-in required"


class Forbidden(AdminProblem):
    status_code = 403
    title = "Not allowed"


class NotFound(AdminProblem):
    status_code = 404
    title = "Not found"


class TooManyAttempts(AdminProblem):
    status_code = 429
    title = "Too many failed sign-ins"

    def __init__(self, wait: sign_in.Throttled) -> None:
        super().__init__(wait.message)
        self.retry_after = wait.retry_after


def _datetime(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "\u2014"


def _number(value: object) -> str:
    """A Decimal without trailing zeros (30.000000000 -> 30); other values as they are."""
    if isinstance(value, Decimal):
        text = f"{value.normalize():f}"
        return text if len(text) <= 12 else f"{value:.4g}"
    return str(value)


def _pretty(value: object) -> str:
    """JSON, indented; a string that is not JSON is shown as it is."""
    if isinstance(value, str):
        try:
            parsed: object = json.loads(value)
        except ValueError:
            return value
        value = parsed
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(str(ADMIN_DIR / "templates")), FileSystemLoader(str(TEMPLATES_DIR))]
        ),
        autoescape=True,
    )
    env.filters["dt"] = _datetime
    env.filters["pretty"] = _pretty
    env.filters["number"] = _number
    return env


templates = Jinja2Templates(env=_environment())


# -- the session ----------------------------------------------------------------------------------


def _codec(container: Container) -> tuple[SessionCodec, CookieSettings]:
    settings = container.settings
    codec = SessionCodec(settings.session_secret_value, "admin", SESSION_SECONDS)
    return codec, CookieSettings(COOKIE, "/", not settings.sandbox, SESSION_SECONDS)


def read_session(request: Request) -> dict[str, Any]:
    """The console session (empty when absent, tampered with or expired)."""
    cached = getattr(request.state, "admin_session", None)
    if isinstance(cached, dict):
        return cached
    codec, _ = _codec(get_container(request))
    data = codec.loads(request.cookies.get(COOKIE)) or {}
    request.state.admin_session = data
    return data


def write_session(request: Request, response: Response, data: dict[str, Any]) -> None:
    codec, cookie = _codec(get_container(request))
    request.state.admin_session = data
    set_session_cookie(response, cookie, codec.dumps(data))


def csrf_token(request: Request, response: Response | None = None) -> str:
    """This session's CSRF token (a new anonymous session gets one; `response` stores it)."""
    session = read_session(request)
    if not session.get("csrf"):
        session = {**session, "csrf": new_csrf_token()}
        request.state.admin_session = session
        request.state.admin_session_dirty = True
    return str(session["csrf"])


def check_csrf(request: Request, given: object) -> None:
    if not csrf_matches(read_session(request).get("csrf"), given):
        raise Forbidden(
            "This form has expired or did not come from the console. Reload the page and try again."
        )


def directory(container: Container) -> OperatorDirectory:
    return OperatorDirectory.from_settings(container.settings)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        name, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (name, password) if sep else None


def client_address(request: Request) -> str:
    """The caller's address (the proxy's, unless uvicorn trusts its forwarded headers)."""
    return request.client.host if request.client else "unknown"


def authenticate(request: Request, name: str, password: str, *, method: str) -> Operator | None:
    """Check a name and password, throttled: TooManyAttempts before any check when over."""
    container = get_container(request)
    operators = directory(container)
    known = name if operators.get(name) is not None else None
    address = client_address(request)
    gate = sign_in.gate(container, known, address)
    if gate.throttled is not None:
        sign_in.record_throttled(method)
        log.warning("admin.sign_in_throttled", operator=name[:64], address=address, method=method)
        raise TooManyAttempts(gate.throttled)
    operator = operators.authenticate(name, password)
    if operator is None:
        sign_in.record_failure(container, known, address, method=method)
        log.warning("admin.sign_in_refused", operator=name[:64], address=address, method=method)
        return None
    sign_in.record_success(container, operator.name, method=method, after=gate)
    return operator


def signed_in(request: Request) -> Operator | None:
    """The console session's operator, or (for scripts) HTTP Basic credentials of one."""
    if hasattr(request.state, "signed_in"):
        return request.state.signed_in  # type: ignore[no-any-return]
    session = read_session(request)
    name = session.get("op")
    operator: Operator | None = None
    if isinstance(name, str):
        container = get_container(request)
        operator = sign_in.session_operator(
            container, session.get("sid"), name, directory(container)
        )
    else:
        credentials = _basic_credentials(request)
        if credentials is not None:
            operator = authenticate(request, *credentials, method="basic")
    request.state.signed_in = operator
    return operator


def require_viewer(request: Request) -> Operator:
    """Dependency: anyone signed in (viewer or operator)."""
    operator = signed_in(request)
    if operator is None:
        raise SignInRequired("Sign in to use the console.")
    request.state.operator = operator
    return operator


def require_operator(request: Request) -> Operator:
    """Dependency: an operator (approves, rejects, replays, retries)."""
    operator = require_viewer(request)
    if not operator.can_act:
        raise Forbidden(
            f"{operator.name} is a viewer: only operators approve, reject, replay or retry."
        )
    return operator


# -- answers --------------------------------------------------------------------------------------


def secure_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A console page: the signed-in operator, CSRF token and flash message come along."""
    session = read_session(request)
    flash = session.get("flash")
    context.setdefault("operator", getattr(request.state, "operator", None))
    if context["operator"] is not None:
        context.setdefault("sync_block", sync_guard.banner(get_container(request)))
    response = templates.TemplateResponse(
        request,
        template,
        {"csrf": csrf_token(request), "flash": flash, "page_title": "Console", **context},
        status_code=status_code,
    )
    if flash is not None:
        session = {k: v for k, v in read_session(request).items() if k != "flash"}
        write_session(request, response, session)
    elif getattr(request.state, "admin_session_dirty", False):
        write_session(request, response, read_session(request))
    return secure_headers(response)


def redirect(request: Request, url: str, *, flash: tuple[str, str] | None = None) -> Response:
    """303 to `url` (a console path), with a one-time message shown by the next page."""
    if not url.startswith("/admin") or url.startswith("//"):
        url = "/admin"
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        kind, text = flash
        write_session(request, response, {**read_session(request), "flash": [kind, text]})
    return secure_headers(response)


def _retry_after(problem: AdminProblem, response: Response) -> Response:
    if isinstance(problem, TooManyAttempts):
        response.headers["Retry-After"] = str(problem.retry_after)
    return response


def _problem_page(request: Request, problem: AdminProblem) -> Response:
    if isinstance(problem, SignInRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/admin"
        return secure_headers(
            RedirectResponse(f"/admin/login?next={quote(target, safe='')}", status_code=303)
        )
    return render(
        request,
        "admin/problem.html",
        problem.status_code,
        code=problem.status_code,
        title=problem.title,
        message=problem.message,
    )


def _problem_json(problem: AdminProblem) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="marketplace-saas"'}
    return secure_headers(
        JSONResponse(
            {"error": {"code": problem.status_code, "message": problem.message or problem.title}},
            status_code=problem.status_code,
            headers=headers if isinstance(problem, SignInRequired) else None,
        )
    )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AdminRoute(APIRoute):
    """A console route: sign-in, role and not-found problems become pages (or JSON for the API)."""

    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()
        is_api = self.path.startswith("/api/")

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except AdminProblem as problem:
                if is_api:
                    return _retry_after(problem, _problem_json(problem))
                return _retry_after(problem, _problem_page(request, problem))

        return handler
