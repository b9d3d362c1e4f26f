"""Fixtures every test folder can use: output folder, Pub/Sub emulator, database URLs."""

from __future__ import annotations

import os
import shutil
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
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test; each test that takes this runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'marketplace.db'}"
        return
    with infra.postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_template_url() -> Iterator[str]:
    with infra.postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Per backend, one database migrated to head once per session, cloned for each test."""
    return {}


def _template(kind: str, templates: dict[str, str], request: pytest.FixtureRequest) -> str:
    from marketplace_saas.adapters.db import migrate

    if kind not in templates:
        if kind == "sqlite":
            folder = request.getfixturevalue("tmp_path_factory").mktemp("template")
            url = f"sqlite:///{folder / 'template.db'}"
        else:
            url = str(request.getfixturevalue("_postgres_template_url"))
        migrate.upgrade(url)
        templates[kind] = url
    return templates[kind]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _migrated_templates: dict[str, str]
) -> Iterator[str]:
    """A fresh database at the head migration for one test; runs on SQLite and on PostgreSQL."""
    template = _template(request.param, _migrated_templates, request)
    if request.param == "sqlite":
        target = tmp_path / "marketplace.db"
        shutil.copyfile(template.removeprefix("sqlite:///"), target)
        yield f"sqlite:///{target}"
        return
    with infra.postgres_clone(template) as url:
        yield url
