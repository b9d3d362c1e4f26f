"""Google's JSON error envelope, shared by every emulated API and the control API.

    ApiError                 any error answered as {"error": {"code", "message", "status"}}
     ├── InvalidArgument     400 INVALID_ARGUMENT (malformed JSON, bad names, unknown fields)
     ├── FailedPrecondition  400 FAILED_PRECONDITION (a call in the wrong state)
     ├── NotFound            404 NOT_FOUND
     ├── Unimplemented       501 UNIMPLEMENTED
     └── Internal            500 INTERNAL (only for bugs: the emulator never means to answer it)

`install_error_handlers(app)` makes every failure of a FastAPI app answer in this envelope:
`ApiError`s, request validation errors, unknown routes and wrong methods, and, as a last resort,
any unexpected exception.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# google.rpc.Code names and the HTTP status Google's JSON transcoding answers for each.
HTTP_STATUS_OF: dict[str, int] = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# The status name Google uses for a bare HTTP status (fault injection, framework errors).
STATUS_OF_HTTP: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(code: int, message: str, status: str) -> dict[str, Any]:
    """The envelope itself: `{"error": {"code": code, "message": message, "status": status}}`."""
    return {"error": {"code": code, "message": message, "status": status}}


def error_response(code: int, message: str, status: str | None = None) -> JSONResponse:
    """A JSON response in Google's envelope; `status` defaults from the HTTP code."""
    status = status or STATUS_OF_HTTP.get(code, "UNKNOWN")
    return JSONResponse(error_body(code, message, status), status_code=code)


class ApiError(Exception):
    """An error answered in Google's envelope. Subclasses fix the status."""

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_OF.get(self.status, 500)

    def to_json(self) -> dict[str, Any]:
        return error_body(self.http_status, self.message, self.status)

    def response(self) -> JSONResponse:
        return JSONResponse(self.to_json(), status_code=self.http_status)


class InvalidArgument(ApiError):
    status = "INVALID_ARGUMENT"


class FailedPrecondition(ApiError):
    status = "FAILED_PRECONDITION"


class NotFound(ApiError):
    status = "NOT_FOUND"


class Unimplemented(ApiError):
    status = "UNIMPLEMENTED"


class Internal(ApiError):
    status = "INTERNAL"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure of `app` in Google's envelope, never as a bare 500 page."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, _validation_message(exc), "INVALID_ARGUMENT")

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"The requested URL {request.url.path} was not found on this server."
        elif exc.status_code == 405:  # Google answers 404 for a method a path does not have
            message = f"Method {request.method} is not allowed on {request.url.path}."
            return error_response(404, message, "NOT_FOUND")
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error serving %s %s", request.method, request.url.path)
        return error_response(500, f"Internal error: {type(exc).__name__}", "INTERNAL")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
