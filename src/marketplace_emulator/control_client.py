"""The command line's client of the emulator's control API (`/emulator/v1/...`).

`ControlClient.call` turns an unreachable emulator and an error answer into a `CliError` whose
code is the command's exit status.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8780"
DEFAULT_PROVIDER = "DEMO-sandbox"
EXIT_API_ERROR = 1
EXIT_UNREACHABLE = 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.code = code


def segment(value: str) -> str:
    """An id for a URL path: a resource name is reduced to its last part."""
    return quote(value.rsplit("/", 1)[-1], safe="")


class ControlClient:
    def __init__(self, url: str, provider: str, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.provider = provider
        self._http = httpx.Client(base_url=self.url, timeout=30.0, transport=transport)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the emulator at {self.url}: {exc}. Is it running? "
                "Start it with `marketplace-emulator serve`, or set --url / "
                "MARKETPLACE_EMULATOR_URL.",
                EXIT_UNREACHABLE,
            ) from None
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {"raw": response.text}
        if response.is_error:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            message = error.get("message") or response.text or response.reason_phrase
            status = error.get("status", "")
            raise CliError(f"{response.status_code} {status}: {message}".replace("  ", " "))
        return data

    def provider_path(self, rest: str) -> str:
        return f"/emulator/v1/providers/{quote(self.provider, safe='')}/{rest}"

    def entitlement(self, entitlement: str, verb: str, body: Any = None) -> Any:
        path = self.provider_path(f"entitlements/{segment(entitlement)}:{verb}")
        return self.call("POST", path, body if body is not None else {})
