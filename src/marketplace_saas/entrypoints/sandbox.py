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
    sandbox_secrets(settings)              the admin password and the session secret, random
                                           once per sandbox, kept in `secrets.json` there (0600)
    require_loopback(host, allow_remote)   loopback only, unless told otherwise

The emulator's products get the backend's sign-up and login URLs (`/signup`, `/login`) and the
sandbox's sign-up audience, so its buyer's page (`{emulator}/marketplace`) sends buyers here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace_saas.config import ConfigurationError, Settings

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


SECRETS_FILE = "secrets.json"


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


@dataclass(frozen=True)
class SandboxSecrets:
    admin_password: str
    session_secret: str
    path: Path | None  # None: made for this process only


def sandbox_secrets(settings: Settings) -> SandboxSecrets:
    """The sandbox's admin password and session secret: read from `secrets.json` in the state
    directory, or made there (mode 0600) on the first start; random per process without one."""
    state = sandbox_state_dir(settings)
    if state is None:
        return SandboxSecrets(secrets.token_urlsafe(12), secrets.token_urlsafe(32), None)
    path = state / SECRETS_FILE
    if not path.exists():
        fresh = {
            "admin_password": secrets.token_urlsafe(12),
            "session_secret": secrets.token_urlsafe(32),
        }
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(fresh, out, indent=2)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SandboxSecrets(str(data["admin_password"]), str(data["session_secret"]), path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"the sandbox's secrets file {path} cannot be read ({exc}); "
            "delete it to make new ones (signed-in sessions end)"
        ) from None


def require_loopback(host: str, *, allow_remote: bool) -> None:
    """The sandbox's console and emulator take no real credentials: serve them on loopback only,
    unless the operator says `--allow-remote`."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"the sandbox listens on loopback only, not on {host!r}: anyone who reaches it can "
            "buy, approve and cancel. Use --host 127.0.0.1, or --allow-remote if you mean it"
        )


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

    through_pubsub = bool(settings.pubsub_emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST"))
    if through_pubsub:  # Google's Pub/Sub client (grpc) is loaded only when it is used
        from marketplace_saas.adapters import pubsub

        pubsub.use_emulator_from(settings)
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
