"""The sign-up pages: Google posts the buyer here; they fill in a form; we approve.

    POST /signup           form field `x-gcp-marketplace-token`: verify, then the form (or, when
                           this account already signed up, the done page)
    POST /signup/complete  the form: create or link the customer, approve, 303 to /signup/done
    GET  /signup/done      what happens next (safe to reload)
    POST /login            the login URL: a recognised customer goes to PRODUCT_URL (303),
                           anyone else gets the sign-up form
    GET  /welcome          the sandbox's stand-in for the provider's product (the default
                           PRODUCT_URL)
    GET  /signup           400: explains where sign-up starts

Answers: 400 without a token, 401 for a refused token or account, 403 for a CSRF mismatch, 422
for answers that need fixing, 503 when Google cannot be reached. The verified account travels in a
signed, short-lived session cookie (`entrypoints.web.security`), never in the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from marketplace_saas.domain.signup import Answer, Visitor
from marketplace_saas.entrypoints.web.app import get_container, templates
from marketplace_saas.entrypoints.web.security import (
    CSRF_FIELD,
    CookieSettings,
    SessionCodec,
    csrf_matches,
    new_csrf_token,
    set_session_cookie,
)
from marketplace_saas.service import signup as service
from marketplace_saas.service.signup.status import customer_overview, signup_status

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

router = APIRouter()

TOKEN_FIELD = "x-gcp-marketplace-token"  # noqa: S105 - a form field's name, not a secret
SIGNUP_SESSION_SECONDS = 30 * 60
CUSTOMER_SESSION_SECONDS = 8 * 3600


def _signup_cookie(container: Container) -> tuple[SessionCodec, CookieSettings]:
    settings = container.settings
    codec = SessionCodec(settings.session_secret_value, "signup", SIGNUP_SESSION_SECONDS)
    cookie = CookieSettings("mps_signup", "/", not settings.sandbox, SIGNUP_SESSION_SECONDS)
    return codec, cookie


def _customer_cookie(container: Container) -> tuple[SessionCodec, CookieSettings]:
    settings = container.settings
    codec = SessionCodec(settings.session_secret_value, "customer", CUSTOMER_SESSION_SECONDS)
    cookie = CookieSettings("mps_customer", "/", not settings.sandbox, CUSTOMER_SESSION_SECONDS)
    return codec, cookie


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _error(
    request: Request, status_code: int, heading: str, message: str, **extra: Any
) -> Response:
    return _page(
        request, "signup_error.html", status_code, heading=heading, message=message, **extra
    )


# The sandbox says what was wrong with a pasted token (a real buyer never pastes one).
PASTE_HINTS = {
    "malformed": "Paste only the token that marketplace-emulator signup-token prints: three "
    "parts separated by dots, nothing around it (older versions printed JSON around it).",
    "wrong_audience": "The token was minted for another audience: mint it with "
    "--audience {audience}.",
    "expired": "The token has expired: mint a new one (--ttl SECONDS makes it last longer).",
    "unknown_account": "The emulator has no such account: use an ACCOUNT id from "
    "marketplace-saas accounts list.",
    "unknown_kid": "The token was signed by another emulator (it was restarted, or is another "
    "one): mint a new one from the sandbox's emulator.",
}


def _start_hint(settings: Any) -> dict[str, Any]:
    """What the error page's "where sign-up starts" section needs (the sandbox's paste box)."""
    audience = settings.signup_audience or service.SANDBOX_AUDIENCE
    return {"start_hint": True, "sandbox": settings.sandbox, "audience": audience}


def _no_token(request: Request) -> Response:
    return _error(
        request,
        400,
        "Sign-up starts at Google Cloud Marketplace",
        "This page opens when you click \u201cSign up with provider\u201d on your order in Google "
        "Cloud Marketplace. It cannot be opened directly.",
        **_start_hint(get_container(request).settings),
    )


def _refused(request: Request, exc: service.SignupError) -> Response:
    if isinstance(exc, service.SignupRefused):
        hint = _start_hint(get_container(request).settings)
        pasted = None
        if hint["sandbox"]:
            advice = PASTE_HINTS.get(exc.reason, "").format(audience=hint["audience"])
            pasted = f"The pasted token was refused ({exc.reason}). {advice}".strip()
        return _error(
            request,
            401,
            "We couldn't verify your sign-up link",
            f"{exc.message} Sign-up links are valid for a few minutes: please go back to Google "
            "Cloud Marketplace and click \u201cSign up with provider\u201d again.",
            pasted=pasted,
            **hint,
        )
    return _error(
        request,
        503,
        "Sign-up is briefly unavailable",
        "We couldn't reach Google Cloud Marketplace to confirm your purchase. Nothing was lost: "
        "please try again in a minute.",
        icon="wait",
    )


def _form(
    request: Request,
    start: service.SignupStart,
    session: dict[str, Any],
    values: Mapping[str, Answer],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    return _page(
        request,
        "signup_form.html",
        status_code,
        purchases=start.purchases,
        fields=get_container(request).settings.signup_fields,
        values=values,
        errors=errors,
        csrf_field=CSRF_FIELD,
        csrf_token=session["csrf"],
    )


async def _token(request: Request) -> str | None:
    form = await request.form()
    token = form.get(TOKEN_FIELD)
    return token.strip() if isinstance(token, str) and token.strip() else None


async def _start(request: Request, token: str) -> Response:
    container = get_container(request)
    try:
        start = await run_in_threadpool(service.begin_signup, container, token)
    except service.SignupError as exc:
        return _refused(request, exc)
    session = {**start.visitor.to_session(), "csrf": new_csrf_token()}
    if start.signed_up:
        response: Response = RedirectResponse("/signup/done", status_code=303)
    else:
        response = _form(request, start, session, start.prefill, {})
    codec, cookie = _signup_cookie(container)
    set_session_cookie(response, cookie, codec.dumps(session))
    return response


@router.post("/signup")
async def signup(request: Request) -> Response:
    token = await _token(request)
    if token is None:
        return _no_token(request)
    return await _start(request, token)


@router.get("/signup")
def signup_without_token(request: Request) -> Response:
    return _no_token(request)


def _visitor(request: Request) -> tuple[Visitor | None, dict[str, Any]]:
    codec, cookie = _signup_cookie(get_container(request))
    session = codec.loads(request.cookies.get(cookie.name)) or {}
    return Visitor.from_session(session), session


def _expired(request: Request) -> Response:
    return _error(
        request,
        401,
        "Your sign-up session has expired",
        "For your security, sign-up sessions last 30 minutes. Please go back to Google Cloud "
        "Marketplace and click \u201cSign up with provider\u201d again.",
        start_hint=True,
    )


@router.post("/signup/complete")
async def complete(request: Request) -> Response:
    container = get_container(request)
    visitor, session = _visitor(request)
    if visitor is None:
        return _expired(request)
    form = await request.form()
    if not csrf_matches(session.get("csrf"), form.get(CSRF_FIELD)):
        message = "Please reload the sign-up page from Google Cloud Marketplace and try again."
        return _error(request, 403, "This form has expired", message)
    fields = container.settings.signup_fields
    answers = {f.name: str(form.get(f.name) or "") for f in fields}
    try:
        status = await run_in_threadpool(service.complete_signup, container, visitor, answers)
    except service.InvalidForm as exc:
        try:
            purchases = await run_in_threadpool(
                service.purchases_of, container, visitor.account_id, visitor.orders
            )
        except service.SignupError as error:
            return _refused(request, error)
        start = service.SignupStart(visitor, purchases, signed_up=False)
        return _form(request, start, session, exc.validated.values, exc.validated.errors, 422)
    except service.SignupError as exc:
        return _refused(request, exc)
    response = RedirectResponse("/signup/done", status_code=303)
    codec, cookie = _customer_cookie(container)
    customer = {"customer_id": status.customer_id, "account_id": status.account_id}
    set_session_cookie(response, cookie, codec.dumps(customer))
    return response


@router.get("/signup/done")
def done(request: Request) -> Response:
    container = get_container(request)
    visitor, _session = _visitor(request)
    status = signup_status(container, visitor.account_id) if visitor else None
    if status is None:
        return _expired(request)
    return _page(
        request, "signup_done.html", status=status, product_url=container.settings.product_url
    )


@router.post("/login")
async def login(request: Request) -> Response:
    token = await _token(request)
    if token is None:
        return _no_token(request)
    container = get_container(request)
    try:
        visitor, customer_id = await run_in_threadpool(service.recognise, container, token)
    except service.SignupError as exc:
        return _refused(request, exc)
    if customer_id is None:
        return await _start(request, token)  # not signed up yet: the sign-up form
    response = RedirectResponse(container.settings.product_url, status_code=303)
    codec, cookie = _customer_cookie(container)
    data = {"customer_id": customer_id, "account_id": visitor.account_id}
    set_session_cookie(response, cookie, codec.dumps(data))
    return response


@router.get("/welcome")
def welcome(request: Request) -> Response:
    container = get_container(request)
    codec, cookie = _customer_cookie(container)
    data = codec.loads(request.cookies.get(cookie.name)) or {}
    customer_id = data.get("customer_id")
    overview = customer_overview(container, customer_id) if isinstance(customer_id, str) else None
    if overview is None:
        return _error(
            request,
            401,
            "Please sign in from Google Cloud Marketplace",
            "Open your order in Google Cloud Marketplace and click "
            "\u201cManage on provider\u201d to sign in.",
            start_hint=True,
        )
    return _page(request, "signup_welcome.html", name=overview.name, purchases=overview.purchases)
