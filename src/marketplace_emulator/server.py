"""The emulator as one object and one FastAPI app, in-process or on a port.

    emulator = Emulator(providers=["DEMO-sandbox"])
    app = create_app(emulator)                  # serve with uvicorn, or:
    running = run_in_thread(emulator)           # a real HTTP server on a free port
    running.url                                 # http://127.0.0.1:PORT
    running.stop()

`Emulator` wires the shared pieces (clock, catalog, faults, notifier) to the emulated APIs
(Procurement, Service Control, identity). Every notification the Procurement backend publishes is
also recorded, so `GET /emulator/v1/notifications` can list it whatever the delivery.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from marketplace_emulator import __version__
from marketplace_emulator.catalog import Catalog
from marketplace_emulator.clock import Clock
from marketplace_emulator.control import faults as control_faults
from marketplace_emulator.control import routes as control_routes
from marketplace_emulator.errors import install_error_handlers
from marketplace_emulator.events import EventSink, RecordingSink
from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.identity import oauth_routes
from marketplace_emulator.identity import routes as identity_routes
from marketplace_emulator.identity.models import IdentityIssuer
from marketplace_emulator.identity.oauth import OAuthServer, PushSigner
from marketplace_emulator.identity.require_auth import install_require_auth
from marketplace_emulator.middleware import (
    install_control_guard,
    install_fault_middleware,
    install_hot_routes,
)
from marketplace_emulator.notifier import Notifier
from marketplace_emulator.persistence import StateFile
from marketplace_emulator.persistence.middleware import install_settings_journal
from marketplace_emulator.procurement import routes as procurement_routes
from marketplace_emulator.procurement.models import ProcurementBackend
from marketplace_emulator.servicecontrol import routes as servicecontrol_routes
from marketplace_emulator.servicecontrol.models import ServiceControlBackend
from marketplace_emulator.servicecontrol.v2 import ServiceControlV2
from marketplace_emulator.storefront import routes as storefront_routes


class TeeSink:
    """Records each notification, then hands it to the delivering sink."""

    def __init__(self, recorder: RecordingSink, target: EventSink) -> None:
        self.recorder = recorder
        self.target = target

    def publish(self, provider_id: str, payload: dict[str, Any]) -> None:
        self.recorder.publish(provider_id, payload)
        self.target.publish(provider_id, payload)


class Emulator:
    """Google's side of a Marketplace SaaS integration, with all its state in memory."""

    def __init__(
        self,
        *,
        pubsub_project: str = "cloudcommerceproc-prod",
        push_endpoint: str | None = None,
        providers: Iterable[str] = (),
        activation_delay_seconds: float = 0.0,
        sink: EventSink | None = None,
        state: str | Path | None = None,
        require_auth: bool = False,
        push_auth: tuple[str, str] | None = None,
    ) -> None:
        """`require_auth`: API calls need OAuth tokens (`identity.require_auth`); `push_auth`:
        (service account email, audience) of the OIDC token each push request carries."""
        self.pubsub_project = pubsub_project
        self.push_endpoint = push_endpoint
        self.providers = list(providers)
        self.clock = Clock()
        self.faults = FaultInjector()
        self.catalog = Catalog()
        self.require_auth = require_auth
        self.oauth = OAuthServer()
        self.notifier = Notifier(
            faults=self.faults,
            pubsub_project=pubsub_project,
            push_endpoint=push_endpoint,
            push_token=PushSigner(self.oauth, *push_auth) if push_auth else None,
        )
        for provider_id in self.providers:
            self.notifier.ensure_topic(provider_id)
            self.catalog.products(provider_id)
        self.recorder = RecordingSink()
        self.sink = TeeSink(self.recorder, sink if sink is not None else self.notifier)
        self.procurement = ProcurementBackend(
            self.clock, self.catalog, self.sink, activation_delay_seconds
        )
        self.servicecontrol = ServiceControlBackend(
            procurement=self.procurement, catalog=self.catalog, clock=self.clock, faults=self.faults
        )
        self.servicecontrol_v2 = ServiceControlV2(self.servicecontrol, self.faults)
        self.identity = IdentityIssuer(clock=self.clock)
        # `state`: a file that keeps the whole state across restarts (persistence/__init__.py)
        self.state = StateFile(state).attach(self) if state is not None else None

    def advance_clock(self, seconds: float) -> None:
        """Move time forward and apply every transition that falls due, in order."""
        self.clock.advance(seconds)
        if self.state is not None:
            self.state.sync_settings()
        self.procurement.process_due()
        if self.state is not None:
            self.state.maybe_compact()

    def notifications(self, provider_id: str | None = None) -> list[dict[str, Any]]:
        """Every notification published since the last reset (of one provider), in order."""
        return [p for prov, p in list(self.recorder.published) if provider_id in (None, prov)]

    def reset(self) -> None:
        """Forget all state, clear faults, reset the clock and the catalog."""
        self.procurement.reset()
        self.servicecontrol.reset()
        self.servicecontrol_v2.reset()
        self.catalog.reset()
        self.faults.clear()
        self.clock.reset()
        self.notifier.reset()
        self.recorder.clear()
        target = self.sink.target
        if isinstance(target, RecordingSink):
            target.clear()
        if self.state is not None:
            self.state.reset()

    def close(self) -> None:
        self.notifier.close()
        if self.state is not None:
            self.state.close()


def create_app(emulator: Emulator) -> FastAPI:
    """The emulator's whole HTTP surface on one app; the emulator is at `app.state.emulator`."""
    app = FastAPI(
        title="Google Cloud Marketplace emulator",
        version=__version__,
        docs_url="/emulator/docs",
        openapi_url="/emulator/openapi.json",
        redoc_url=None,
    )
    app.state.emulator = emulator
    install_error_handlers(app)
    install_hot_routes(app, procurement_routes.hot_endpoint)  # inside the faults: added first
    install_fault_middleware(app)
    install_settings_journal(app)
    install_control_guard(app)
    if emulator.require_auth:
        install_require_auth(app)  # outermost: credentials are checked before faults
    app.include_router(procurement_routes.router)
    app.include_router(servicecontrol_routes.router)
    app.include_router(identity_routes.router)
    app.include_router(oauth_routes.router)
    app.include_router(control_routes.router)
    app.include_router(control_faults.router)
    app.include_router(storefront_routes.router)
    return app


class RunningEmulator:
    """An emulator served by uvicorn in a background thread."""

    def __init__(
        self, emulator: Emulator, server: uvicorn.Server, thread: threading.Thread, url: str
    ):
        self.emulator = emulator
        self.server = server
        self.thread = thread
        self.url = url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def run_in_thread(
    emulator: Emulator, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> RunningEmulator:
    """Serve `emulator` on `host:port` (a free port when 0) until `.stop()`."""
    port = port or free_port(host)
    config = uvicorn.Config(
        create_app(emulator), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"emulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the emulator did not start on {host}:{port}")
        time.sleep(0.01)
    return RunningEmulator(emulator, server, thread, f"http://{host}:{port}")
