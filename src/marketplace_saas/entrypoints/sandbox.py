"""Sandbox wiring: the Marketplace emulator in-process, and the settings that point at it.

This is the only module of `marketplace_saas` that imports `marketplace_emulator` (lazily, so
that production commands never load it).

    start_sandbox(settings, backend_url)   the emulator on port 8780 (or a free port), settings
                                           aimed at it, and how notifications will arrive:
                                           pushed to `{backend_url}/pubsub/push`, or through the
                                           Pub/Sub emulator when PUBSUB_EMULATOR_HOST is set
    client_settings(settings)              for the other commands: the sandbox emulator's URL
                                           ($MARKETPLACE_EMULATOR_URL, default port 8780)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
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
    emulator = Emulator(push_endpoint=push_endpoint, providers=[settings.provider_id])
    try:
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
        push_endpoint=push_endpoint,
        _running=running,
        _emulator=emulator,
    )
