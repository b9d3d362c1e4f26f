"""The backend's web app: one FastAPI app, its routers listed in `ROUTER_MODULES`.

Each name is a module under `entrypoints/web/` exposing `router`. The container built by
`bootstrap()` lives at `app.state.container`; route functions get it with
`Depends(get_container)`. Shared Jinja2 templates are in `templates/`, static files in `static/`
(served at `/static`). Every request and answer passes `guards.GuardMiddleware` (body caps, the
console's Origin check, security headers).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from marketplace_saas.entrypoints.web.guards import GuardMiddleware

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

ROUTER_MODULES = ["health", "push", "signup", "usage", "admin", "api_v1", "home"]

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def get_container(request: Request) -> Container:
    """FastAPI dependency: the application's container."""
    return cast("Container", request.app.state.container)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each invalid field and why, without echoing the input back: an input may not
    even be encodable as JSON (`1e999999999` reads as infinity, a lone surrogate)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in errors
    ]
    return JSONResponse({"detail": detail or "the request is not valid"}, status_code=422)


def create_app(container: Container) -> FastAPI:
    app = FastAPI(
        title="marketplace-saas",
        description="A SaaS provider's backend for Google Cloud Marketplace.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.container = container
    app.add_middleware(GuardMiddleware, settings=container.settings)
    app.add_exception_handler(RequestValidationError, invalid_request)
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"marketplace_saas.entrypoints.web.{name}")
        app.include_router(module.router)
    importlib.import_module("marketplace_saas.entrypoints.web.home").install_html_errors(app)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app
