"""Fixtures every test folder can use: output folder, Pub/Sub emulator, database URLs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import infra

OUTPUT_DIR = Path(os.environ.get("TEST_OUTPUT_DIR", "test-output"))


@pytest.fixture(scope="session")
def test_output_dir() -> Path:
    """Where tests save screenshots, logs and other artefacts (`test-output/` by default)."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def pubsub_emulator_host(test_output_dir: Path) -> Iterator[str]:
    """'host:port' of a real Cloud Pub/Sub emulator started for this test session."""
    with infra.pubsub_emulator(test_output_dir / "logs") as host:
        yield host


@pytest.fixture
def pubsub_env(pubsub_emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Google's Pub/Sub client at the emulator for one test (PUBSUB_EMULATOR_HOST)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator_host)
    return pubsub_emulator_host


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database created for this test session, dropped at its end."""
    with infra.postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'marketplace.db'}"
    return str(request.getfixturevalue("postgres_url"))
