"""After each control-API write, journal the settings it may have changed (catalog, faults, clock).

A plain ASGI middleware: other requests pass with one comparison. The settings are written when the
handler starts its response, before the client sees it, so an answered call is on disk.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/emulator/"


class SettingsJournalMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state.emulator.state if scope["type"] == "http" else None
        if (
            state is None
            or scope["method"] == "GET"
            or not scope["path"].startswith(CONTROL_PREFIX)
        ):
            await self.app(scope, receive, send)
            return

        async def send_after_saving(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.sync_settings()
            await send(message)

        await self.app(scope, receive, send_after_saving)
        state.maybe_compact()


def install_settings_journal(app: FastAPI) -> None:
    app.add_middleware(SettingsJournalMiddleware)
