"""Backend integration fixtures: the Marketplace emulator over HTTP and a wired container.

emulator            the in-process `Emulator` (served on a real port for the whole session by
                    `run_in_thread`), reset before each test; notifications are recorded, not
                    delivered: read them with `emulator.notifications(PROVIDER)`
emulator_url        its base URL (what `PROCUREMENT_API_ENDPOINT` points at)
make_container      `make_container(**settings)`: a container on this test's database
                    (`migrated_database_url`, so SQLite and PostgreSQL) and the emulator,
                    sandbox settings; keyword arguments override settings by field name
container           `make_container()` with the default policies
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from marketplace_emulator.events import RecordingSink
from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.config import Settings

PROVIDER = "DEMO-sandbox"  # the sandbox's provider id (DEMO-{project}, project "sandbox")

ContainerFactory = Callable[..., Container]


@pytest.fixture(scope="session")
def running_emulator() -> Iterator[RunningEmulator]:
    """One emulator served on a free port for the whole session."""
    emulator = Emulator(sink=RecordingSink(), providers=[PROVIDER])
    running = run_in_thread(emulator)
    yield running
    running.stop()
    emulator.close()


@pytest.fixture
def emulator(running_emulator: RunningEmulator) -> Emulator:
    """The served emulator with its state, faults, clock and recorded notifications reset."""
    running_emulator.emulator.reset()
    return running_emulator.emulator


@pytest.fixture
def emulator_url(running_emulator: RunningEmulator, emulator: Emulator) -> str:
    return running_emulator.url


def backend_settings(database_url: str, endpoint: str, **overrides: Any) -> Settings:
    """Sandbox settings for a test; no `.env` file and no stray environment leak in."""
    values: dict[str, Any] = {
        "marketplace_provider_id": PROVIDER,
        "procurement_api_endpoint": endpoint,
        "database_url": database_url,
        "marketplace_sandbox": True,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def make_container(migrated_database_url: str, emulator_url: str) -> Iterator[ContainerFactory]:
    made: list[tuple[Container, ProcurementGateway]] = []

    def make(**overrides: Any) -> Container:
        settings = backend_settings(migrated_database_url, emulator_url, **overrides)
        # The emulator takes anonymous calls; tests of production settings need no key file.
        gateway = ProcurementGateway(
            settings,
            credentials=AnonymousCredentials(),
            timeout=10.0,
            backoff_base=0.01,
            backoff_max=0.05,
        )
        container = bootstrap(settings, procurement=gateway)
        made.append((container, gateway))
        return container

    yield make
    for container, gateway in made:
        container.close()
        gateway.close()


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    """A backend container on this test's database and the emulator (default policies)."""
    return make_container()
