"""Sandbox wiring: the Marketplace emulator in-process, and the settings that point at it.

This is the only module of `marketplace_saas` that imports `marketplace_emulator` (lazily, so
that production commands never load it).

    start_sandbox(settings, backend_url)   the emulator on port 8780 (or a free port), settings
                                           aimed at it, and how notifications will arrive:
                                           pushed to `{backend_url}/pubsub/push`, or through the
                                           Pub/Sub emulator when PUBSUB_EMULATOR_HOST is set
    client_settings(settings)              for the other commands: the sandbox emulator's URL
                                           ($MARKETPLACE_EMULATOR_URL, default port 8780)
    sandbox_state_dir(settings)            where the sandbox keeps what outlives a restart:
                                           `X.sandbox/` beside a SQLite file `X.db`; the
                                           emulator's state file is `emulator-state.jsonl` there

The emulator's products get the backend's sign-up and login URLs (`/signup`, `/login`) and the
sandbox's sign-up audience, so its buyer's page (`{emulator}/marketplace`) sends buyers here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace_saas.config import Settings

EMULATOR_PORT = 8780
EMULATOR_HOST = "127.0.0.1"
X509_PATH = "/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com"


def _aimed_at(settings: Settings, url: str) -> Settings:
    url = url.rstrip("/")
    return settings.model_copy(
        update={
            "procurement_api_endpoint": url,
            "service_control_api_endpoint": url,
            "signup_certs_url": url + X509_PATH,
            "marketplace_sandbox": True,
        }
    )


def client_settings(settings: Settings) -> Settings:
    """Settings for a command run next to `serve`: talk to the sandbox's emulator."""
    url = os.environ.get("MARKETPLACE_EMULATOR_URL") or f"http://{EMULATOR_HOST}:{EMULATOR_PORT}"
    return _aimed_at(settings, url)


def sandbox_state_dir(settings: Settings) -> Path | None:
    """`X.sandbox/` beside the SQLite file `X.db` (`marketplace.db` -> `marketplace.sandbox/`);
    None when the database is not a SQLite file (in memory, PostgreSQL): nothing is kept then."""
    from marketplace_saas.adapters.db.engine import sqlite_file

    database = sqlite_file(settings.database_url)
    return None if database is None else database.with_name(database.stem + ".sandbox")


def emulator_state_file(settings: Settings) -> Path | None:
    """The sandbox emulator's `--state` file, or None when the sandbox keeps nothing."""
    from marketplace_emulator.persistence import STATE_FILE_NAME

    folder = sandbox_state_dir(settings)
    return folder / STATE_FILE_NAME if folder is not None else None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class Sandbox:
    settings: Settings
    emulator_url: str
    delivery: str  # "push" | "pubsub"
    state_file: Path | None
    push_endpoint: str | None
    _running: Any
    _emulator: Any

    @property
    def default_port(self) -> bool:
        return self.emulator_url.endswith(f":{EMULATOR_PORT}")

    def stop(self) -> None:
        self._running.stop()
        self._emulator.close()


def start_sandbox(
    settings: Settings, backend_url: str, *, emulator_port: int | None = None
) -> Sandbox:
    """Start the emulator in this process and aim `settings` at it."""
    from marketplace_emulator.server import Emulator, run_in_thread
    from marketplace_saas.adapters import pubsub

    pubsub.use_emulator_from(settings)
    through_pubsub = bool(os.environ.get("PUBSUB_EMULATOR_HOST"))
    push_endpoint = None if through_pubsub else backend_url.rstrip("/") + "/pubsub/push"
    if emulator_port is None:
        emulator_port = EMULATOR_PORT if _port_free(EMULATOR_HOST, EMULATOR_PORT) else 0
    state_file = emulator_state_file(settings)
    emulator = Emulator(
        push_endpoint=push_endpoint, providers=[settings.provider_id], state=state_file
    )
    try:
        _send_buyers_to(emulator, settings, backend_url.rstrip("/"))
        running = run_in_thread(emulator, host=EMULATOR_HOST, port=emulator_port)
    except Exception:
        emulator.close()
        raise
    sandbox_settings = _aimed_at(settings, running.url)
    if through_pubsub:
        pubsub.ensure_topic(sandbox_settings, sandbox_settings.topic_path)
        pubsub.create_subscription(sandbox_settings)
    return Sandbox(
        settings=sandbox_settings,
        emulator_url=running.url,
        delivery="pubsub" if through_pubsub else "push",
        state_file=state_file,
        push_endpoint=push_endpoint,
        _running=running,
        _emulator=emulator,
    )


def _send_buyers_to(emulator: Any, settings: Settings, backend_url: str) -> None:
    """Every product of the provider signs buyers up here (its URLs follow the backend's port)."""
    from marketplace_saas.service.signup import audience

    products = emulator.catalog.products(settings.provider_id)
    for product_id, product in products.items():
        urls = {
            "signup_url": f"{backend_url}/signup",
            "login_url": f"{backend_url}/login",
            "signup_audience": audience(settings),
        }
        emulator.catalog.put(settings.provider_id, product_id, product.model_copy(update=urls))
    if emulator.state is not None:
        emulator.state.sync_settings()
