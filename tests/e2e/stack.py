"""The whole stack on real ports for browser tests: the Marketplace emulator pushing its
notifications to the backend's web app, both served from this process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from marketplace_emulator.server import Emulator, RunningEmulator, free_port, run_in_thread
from marketplace_saas.adapters.operators import hash_password
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.cli.serve import WebServer
from marketplace_saas.entrypoints.web.app import create_app


@dataclass
class Stack:
    url: str  # the backend's base URL
    emulator: RunningEmulator
    container: Container


@contextmanager
def start_stack(
    database_url: str, provider: str, settings: Callable[[str], dict[str, Any]]
) -> Iterator[Stack]:
    """Start both; `settings(emulator_url)` adds the test's own settings to the sandbox's."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    emulator = Emulator(push_endpoint=f"{url}/pubsub/push", providers=[provider])
    running = run_in_thread(emulator)
    config = Settings(
        _env_file=None,
        marketplace_provider_id=provider,
        procurement_api_endpoint=running.url,
        database_url=database_url,
        marketplace_sandbox=True,
        **settings(running.url),
    )
    gateway = ProcurementGateway(config, timeout=10.0)
    container = bootstrap(config, procurement=gateway)
    web = WebServer(create_app(container), "127.0.0.1", port)
    web.start()
    try:
        yield Stack(url, running, container)
    finally:
        web.stop()
        running.stop()
        emulator.close()
        container.close()
        gateway.close()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `condition` until it returns something truthy (a bounded wait, not a timing check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


PASSWORD = "correct horse battery staple"  # of the operator `olga` of `operator_stack`


@contextmanager
def operator_stack(database_url: str, provider: str, **settings: Any) -> Iterator[Stack]:
    """`start_stack` with the test's `settings` and one operator, olga, signing in with PASSWORD."""
    operators = f"olga:operator:{hash_password(PASSWORD)}"
    with start_stack(
        database_url, provider, lambda _emulator_url: {**settings, "admin_operators": operators}
    ) as running:
        yield running
