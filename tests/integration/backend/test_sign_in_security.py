"""Console sign-in security over HTTP, across two replicas sharing one database (issue 17).

Each replica is its own `bootstrap()`ed container and app on the test's database (SQLite and
PostgreSQL): throttling counters and sessions must hold across them, as across real replicas.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from marketplace_saas.adapters.operators import hash_password
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.entrypoints.web.app import create_app
from marketplace_saas.service import sign_in
from tests.integration.backend.admin_support import (
    OPERATOR,
    PASSWORD,
    csrf_from,
    operators_setting,
)
from tests.integration.backend.conftest import backend_settings

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replicas(migrated_database_url: str, emulator_url: str, clock: Clock) -> Iterator[Any]:
    """`replica(**settings)`: a new container and TestClient on the same database."""
    with ExitStack() as stack:

        def replica(address: str = "203.0.113.7", **overrides: Any) -> TestClient:
            overrides.setdefault("admin_operators", operators_setting())
            settings = backend_settings(migrated_database_url, emulator_url, **overrides)
            container: Container = bootstrap(settings, clock=clock)
            stack.callback(container.close)
            client = TestClient(create_app(container), client=(address, 50000))
            return stack.enter_context(client)

        yield replica


def _form_sign_in(client: TestClient, password: str, name: str = OPERATOR) -> Any:
    token = csrf_from(client.get("/admin/login").text)
    return client.post(
        "/admin/login",
        data={"name": name, "password": password, "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )


def _basic(name: str, password: str) -> dict[str, str]:
    value = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def _sign_ins(outcome: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        "marketplace_sign_ins_total", {"method": method, "outcome": outcome}
    )
    return value or 0.0


def test_wrong_passwords_on_two_replicas_then_the_right_one_is_throttled(
    replicas: Any, clock: Clock
) -> None:
    """Failures count across replicas: after the operator's limit, even the right password waits
    (429, Retry-After, a clear message, a metric); once the windows pass it signs in."""
    first, second = replicas(), replicas()
    half = sign_in.OPERATOR_LIMIT // 2
    for client in [first] * half + [second] * (sign_in.OPERATOR_LIMIT - half):
        assert _form_sign_in(client, "wrong password").status_code == 401
    throttled_before = _sign_ins("throttled", "form")
    answer = _form_sign_in(first, PASSWORD)
    assert answer.status_code == 429
    assert "Too many failed sign-ins" in answer.text
    assert 0 < int(answer.headers["retry-after"]) <= sign_in.WINDOW.total_seconds()
    assert first.get("/admin/approvals", follow_redirects=False).status_code == 303
    assert _sign_ins("throttled", "form") == throttled_before + 1
    clock.now += 2 * sign_in.WINDOW
    assert _form_sign_in(second, PASSWORD).status_code == 303


def test_http_basic_guessing_on_the_api_is_throttled_too(replicas: Any) -> None:
    """HTTP Basic on /api/v1 counts against the same operator: 429 JSON with Retry-After."""
    first, second = replicas(), replicas()
    for attempt in range(sign_in.OPERATOR_LIMIT):
        client = first if attempt % 2 else second
        answer = client.get("/api/v1/overview", headers=_basic(OPERATOR, f"guess-{attempt}"))
        assert answer.status_code == 401
    answer = first.get("/api/v1/overview", headers=_basic(OPERATOR, PASSWORD))
    assert answer.status_code == 429
    assert "Too many failed sign-ins" in answer.json()["error"]["message"]
    assert int(answer.headers["retry-after"]) > 0


def test_one_address_guessing_many_names_is_throttled_but_not_other_addresses(
    replicas: Any,
) -> None:
    """Per address: unknown names count against the client address; another address signs in."""
    attacker = replicas(address="198.51.100.9")
    for attempt in range(sign_in.ADDRESS_LIMIT):
        answer = attacker.get("/api/v1/overview", headers=_basic(f"user{attempt}", "x"))
        assert answer.status_code == 401
    assert _form_sign_in(attacker, PASSWORD).status_code == 429
    assert _form_sign_in(replicas(address="192.0.2.1"), PASSWORD).status_code == 303


def test_a_cookie_saved_before_logout_is_refused_on_every_replica(replicas: Any) -> None:
    """Logout on one replica revokes the session row: the saved cookie opens nothing anywhere."""
    first, second = replicas(), replicas()
    assert _form_sign_in(first, PASSWORD).status_code == 303
    saved = first.cookies.get("mps_admin")
    assert saved
    assert first.get("/admin/approvals").status_code == 200
    second.cookies.set("mps_admin", saved)
    assert second.get("/api/v1/overview").status_code == 200
    token = csrf_from(second.get("/admin").text)
    logout = second.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
    assert logout.status_code == 303
    for client in (first, second):
        client.cookies.set("mps_admin", saved)
        assert client.get("/admin/approvals", follow_redirects=False).status_code == 303
        assert client.get("/api/v1/overview").status_code == 401


def test_removing_an_operator_ends_their_sessions_even_if_added_back(replicas: Any) -> None:
    """A replica that no longer lists the operator revokes their sessions; a replica still
    listing them (or the name added back) does not revive the cookie."""
    first = replicas()
    assert _form_sign_in(first, PASSWORD).status_code == 303
    saved = first.cookies.get("mps_admin")
    assert saved
    without = replicas(admin_operators=operators_setting().split(",", 1)[1])
    without.cookies.set("mps_admin", saved)
    assert without.get("/api/v1/overview").status_code == 401
    assert first.get("/api/v1/overview").status_code == 401


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(replicas: Any) -> None:
    """Sessions carry a digest of the operator's password hash: a new hash refuses them."""
    first = replicas()
    assert _form_sign_in(first, PASSWORD).status_code == 303
    saved = first.cookies.get("mps_admin")
    assert saved
    changed = replicas(admin_operators=f"{OPERATOR}:operator:{hash_password('another one')}")
    changed.cookies.set("mps_admin", saved)
    assert changed.get("/api/v1/overview").status_code == 401


def test_a_cookie_without_a_session_row_is_refused(replicas: Any) -> None:
    """A validly signed cookie naming an operator but no live session opens nothing."""
    from marketplace_saas.entrypoints.web.admin.common import _codec

    client = replicas()
    codec, _ = _codec(client.app.state.container)  # type: ignore[attr-defined]
    forged = codec.dumps({"op": OPERATOR, "sid": "made-up", "csrf": "x"})
    client.cookies.set("mps_admin", forged)
    assert client.get("/api/v1/overview").status_code == 401
    client.cookies.set("mps_admin", codec.dumps({"op": OPERATOR, "csrf": "x"}))
    assert client.get("/api/v1/overview").status_code == 401
