"""Run the example provider app (`examples/provider_app/`) next to the sandbox.

    provider = start_example_provider(8790, backend_url=..., secret=..., usage_token=...)
    provider.hooks_url   # what HOOK_RECEIVERS should name
    provider.stop()

    settings, provider = attach_example_provider(settings, backend_url)   # the sandbox's one line

The app lives in the repository, not in the installed package: `start_example_provider` returns
None when it is not there (an install from a wheel), and the sandbox runs without it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from marketplace_saas.config import Settings

APP = Path(__file__).resolve().parents[3] / "examples" / "provider_app" / "app.py"
HOST = "127.0.0.1"


@dataclass
class ExampleProvider:
    url: str
    process: subprocess.Popen[bytes]
    port: int

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the app listens; RuntimeError (and the app stopped) when it does not."""
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the example provider app did not start on port {self.port}")
            time.sleep(0.05)

    @property
    def hooks_url(self) -> str:
        return f"{self.url}/hooks"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def start_example_provider(
    port: int,
    *,
    backend_url: str,
    secret: str,
    usage_token: str | None = None,
    data_dir: Path | None = None,
    timeout: float = 30.0,
    wait: bool = True,
) -> ExampleProvider | None:
    """Start the app on `port` and (unless `wait` is False: call `wait_ready()` later) wait until
    it listens; None when the app is not installed."""
    if not APP.exists():
        return None
    data = data_dir or Path("provider-data")
    command = [sys.executable, str(APP), "--host", HOST, "--port", str(port)]
    command += ["--data", str(data), "--backend", backend_url]
    env = dict(os.environ, HOOK_WEBHOOK_SECRET=secret)
    if usage_token:
        env["USAGE_API_TOKEN"] = usage_token
    process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and file
    provider = ExampleProvider(f"http://{HOST}:{port}", process, port)
    if wait:
        provider.wait_ready(timeout)
    return provider


EXAMPLE_PORT = 8790
SANDBOX_USAGE_TOKEN = "sandbox-usage-token"  # noqa: S105 - the sandbox only


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def attach_example_provider(
    settings: Settings, backend_url: str, *, wait: bool = True
) -> tuple[Settings, ExampleProvider | None]:
    """Sandbox only: run the example app and make it the hook receiver (and a usage client).

    Leaves the settings alone outside the sandbox, when HOOK_RECEIVERS is set, or when the app is
    not installed. Otherwise returns settings whose HOOK_RECEIVERS names the app's `/hooks`, with
    a usage API token for it when none is configured.
    """
    if not settings.sandbox or settings.hook_receivers.strip():
        return settings, None
    from marketplace_saas.adapters.hooks import webhook_secrets

    tokens = sorted(settings.usage_tokens()) or [SANDBOX_USAGE_TOKEN]
    port = EXAMPLE_PORT if not _listening(EXAMPLE_PORT) else _free_port()
    provider = start_example_provider(
        port,
        backend_url=backend_url,
        secret=webhook_secrets(settings)[0],
        usage_token=tokens[0],
        wait=wait,
    )
    if provider is None:
        return settings, None
    updated = settings.model_copy(
        update={
            "hook_receivers": provider.hooks_url,
            "usage_api_tokens": [SecretStr(token) for token in tokens],
        }
    )
    return updated, provider
