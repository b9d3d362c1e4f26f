"""Service Control's errors, in Google's JSON error envelope (`marketplace_emulator.errors`).

    errors.ApiError
     ├── errors.InvalidArgument
     │    └── InvalidArgument         400 INVALID_ARGUMENT (malformed body, duplicate metric values)
     │         └── PayloadTooLarge    400 INVALID_ARGUMENT (body over the 1 MB request limit)
     └── ServiceNotKnown              403 PERMISSION_DENIED (no product uses this service name)

Per-operation failures are not exceptions: they come back with HTTP 200, in `reportErrors` (report)
or `checkErrors` (check), each carrying a `google.rpc.Status` made by `rpc_status`.
"""

from __future__ import annotations

from typing import Any

from marketplace_emulator import errors

# google.rpc.Code numbers, as carried in `Status.code`.
RPC_CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

MAX_REQUEST_BYTES = 1024 * 1024


def rpc_status(status: str, message: str) -> dict[str, Any]:
    """A `google.rpc.Status` object, as carried in `reportErrors[].status`."""
    return {"code": RPC_CODES[status], "message": message}


class InvalidArgument(errors.InvalidArgument):
    """The whole request is malformed or breaks a request-wide rule."""


class PayloadTooLarge(InvalidArgument):
    def __init__(self, size: int) -> None:
        super().__init__(
            f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes (got {size})."
        )


class ServiceNotKnown(errors.ApiError):
    status = "PERMISSION_DENIED"

    def __init__(self, service_name: str, method: str) -> None:
        super().__init__(
            f"Permission 'servicemanagement.services.{method}' denied on service "
            f"'{service_name}' (or it may not exist)."
        )
