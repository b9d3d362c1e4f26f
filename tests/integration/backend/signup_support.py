"""Helpers for the sign-up tests: a backend app on the emulator, tokens, and table row counts."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from marketplace_emulator.identity.models import X509_PATH, encode_rs256, signing_key
from marketplace_saas.adapters.db.models import Base
from marketplace_saas.bootstrap import Container
from marketplace_saas.config import CLOUD_COMMERCE_PARTNER_ISS
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.conftest import ContainerFactory

AUDIENCE = "saas.example.test"
FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines"}


def signup_container(
    make_container: ContainerFactory, emulator_url: str, **overrides: Any
) -> Container:
    """A container whose sign-up verifies against the emulator's certificates endpoint."""
    certs = emulator_url.rstrip("/") + X509_PATH
    return make_container(signup_audience=AUDIENCE, signup_certs_url=certs, **overrides)


@pytest.fixture
def signup_app(make_container: ContainerFactory, emulator_url: str) -> Container:
    """A container whose sign-up pages verify tokens against the emulator."""
    return signup_container(make_container, emulator_url)


def client(container: Container) -> TestClient:
    return TestClient(create_app(container), follow_redirects=False)


def emulator_token(account_id: str, **overrides: Any) -> str:
    """A token signed with the emulator's own key (what Google would send), claims overridable."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": CLOUD_COMMERCE_PARTNER_ISS,
        "aud": AUDIENCE,
        "sub": account_id,
        "iat": now,
        "exp": now + 300,
        "google": {"user_identity": f"user-of-{account_id}", "roles": ["account_admin"]},
    }
    payload.update(overrides)
    return encode_rs256(signing_key(), payload)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def row_counts(container: Container) -> dict[str, int]:
    """Rows per table: proves that a refused request changed no record."""
    with container.engine.connect() as conn:
        return {
            table.name: int(
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in Base.metadata.sorted_tables
        }
