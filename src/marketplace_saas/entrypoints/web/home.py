"""Pages for a person who opens the service's own addresses: `/`, `GET /login`, and an HTML page
for an unknown address outside the JSON surfaces.

    GET /          what this service is, with links to sign-up, the console and the docs
    GET /login     what the login URL is for (Google Cloud Marketplace POSTs to it)

JSON stays JSON: under `/api`, `/v1` and `/pubsub` (machines call them) an error is FastAPI's
`{"detail": ...}`; elsewhere a 404 or 405 is a page (`install_html_errors`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketplace_saas.entrypoints.web.app import get_container, templates

router = APIRouter()

JSON_PREFIXES = ("/api/", "/v1/", "/pubsub/")


def _page(request: Request, status_code: int = 200, **context: Any) -> Response:
    settings = get_container(request).settings
    context.setdefault("sandbox", settings.sandbox)
    response = templates.TemplateResponse(request, "home.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return _page(request, page="home")


@router.get("/login", include_in_schema=False)
def login_explained(request: Request) -> Response:
    return _page(request, page="login")


async def _html_errors(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    if exc.status_code not in (404, 405) or path.startswith(JSON_PREFIXES):
        return await http_exception_handler(request, exc)
    return _page(request, exc.status_code, page="missing", path=path, status=exc.status_code)


def install_html_errors(app: FastAPI) -> None:
    """A person who mistypes an address gets a page, not `{"detail":"Not Found"}`."""
    app.add_exception_handler(StarletteHTTPException, _html_errors)
