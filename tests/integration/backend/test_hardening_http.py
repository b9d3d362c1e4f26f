"""The attacks of the penetration test (issue 17), replayed over HTTP against the real app.

Push endpoint open in production (finding 4), bodies read whole (5), deep nesting answered 500
(6), missing headers (9), console posts from a foreign Origin (11).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from marketplace_saas.adapters.db.models import InboxMessage
from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.cli.serve import WebServer
from marketplace_saas.entrypoints.web import guards
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.admin_support import (
    OPERATOR,
    PASSWORD,
    admin_container,
    console,
    sign_in,
)
from tests.integration.backend.conftest import ContainerFactory
from tests.support.infra import free_port

pytestmark = pytest.mark.integration

PRODUCTION = {
    "marketplace_sandbox": False,
    "google_cloud_project": "provider-project",
    "session_secret": "s" * 40,
}
EVIL = "https://evil.example"


def _inbox_rows(container: Container) -> int:
    with container.sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(InboxMessage)) or 0)


def _notification(event_id: str = "ev-1") -> bytes:
    payload = {
        "eventId": event_id,
        "eventType": "ACCOUNT_ACTIVE",
        "providerId": "DEMO-sandbox",
        "account": {"id": "acct-1", "updateTime": "2025-01-01T00:00:00Z"},
    }
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps({"message": {"data": data, "messageId": "m-1"}}).encode()


def _basic() -> dict[str, str]:
    value = base64.b64encode(f"{OPERATOR}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


@pytest.fixture
def sandbox_client(make_container: ContainerFactory) -> Iterator[TestClient]:
    with console(admin_container(make_container, usage_api_tokens="t")) as client:
        yield client


# -- finding 4: the push endpoint in production ---------------------------------------------------


def test_production_push_without_push_authentication_is_disabled_and_stores_nothing(
    make_container: ContainerFactory,
) -> None:
    """Outside the sandbox, with PUSH_AUDIENCE unset, an anonymous push is refused (404, with
    the variables to set) and nothing reaches the inbox; the sandbox keeps it open."""
    container = make_container(**PRODUCTION)
    with TestClient(create_app(container)) as client:
        answer = client.post("/pubsub/push", content=_notification())
        assert answer.status_code == 404
        assert "PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT" in answer.json()["error"]
    assert _inbox_rows(container) == 0
    audience_only = make_container(**PRODUCTION, push_audience="https://backend.example/push")
    with TestClient(create_app(audience_only)) as client:
        answer = client.post("/pubsub/push", content=_notification())
        assert answer.status_code == 404
        assert "PUSH_SERVICE_ACCOUNT" in answer.json()["error"]


def test_serve_push_only_in_production_without_push_authentication_refuses_to_start(
    tmp_path: Any,
) -> None:
    """`serve --no-listener` outside the sandbox without push authentication exits 1 and names
    the fix, before opening any port."""
    from tests.integration.backend.process_support import run_cli
    from tests.integration.backend.test_serve import sandbox_env

    env = sandbox_env(
        f"sqlite:///{tmp_path / 'prod.db'}",
        MARKETPLACE_SANDBOX="0",
        GOOGLE_CLOUD_PROJECT="provider-project",
        SESSION_SECRET="s" * 40,
    )
    done = run_cli(["serve", "--no-listener", "--port", str(free_port())], env)
    assert done.returncode == 1
    assert "PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT" in done.stderr
    assert "drop --no-listener" in done.stderr


# -- finding 5: body caps -------------------------------------------------------------------------


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"a" * min(size, total - sent)
        sent += size


def test_an_oversized_push_is_413_whether_its_length_is_declared_or_streamed(
    sandbox_client: TestClient,
) -> None:
    """Over Pub/Sub's 10 MiB: 413 from the declared length, or as soon as a streamed body passes
    the cap; nothing stored."""
    over = guards.PUSH_BODY_LIMIT + 1
    declared = sandbox_client.post("/pubsub/push", content=b" " * over)
    assert declared.status_code == 413
    streamed = sandbox_client.post("/pubsub/push", content=_chunks(over))
    assert streamed.status_code == 413
    assert "larger than" in streamed.text
    assert _inbox_rows(sandbox_client.app.state.container) == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/signup", "/login", "/signup/complete", "/admin/login"])
def test_an_oversized_form_is_413_before_it_is_parsed(
    sandbox_client: TestClient, path: str
) -> None:
    """A multipart body over 64 KiB to a sign-up or sign-in form: 413, declared or streamed
    (`/signup/complete` without a sign-up session refuses with 401 before reading at all)."""
    files = {"upload": ("big.bin", b"x" * (guards.DEFAULT_BODY_LIMIT + 1))}
    assert sandbox_client.post(path, files=files).status_code == 413
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    streamed = sandbox_client.post(
        path, content=_chunks(guards.DEFAULT_BODY_LIMIT * 4, 4096), headers=headers
    )
    assert streamed.status_code == (401 if path == "/signup/complete" else 413)


# -- finding 6: deep nesting ----------------------------------------------------------------------

DEEP = b'{"message":' + b"[" * 100_000


def test_deeply_nested_json_is_400_on_every_json_endpoint(sandbox_client: TestClient) -> None:
    """`{"message":` and 100,000 `[`: 400 with a reason on the push endpoint, the usage API and
    the console API, never a 500."""
    push = sandbox_client.post("/pubsub/push", content=DEEP)
    assert push.status_code == 400
    assert "nests too deeply" in push.json()["error"]
    container = sandbox_client.app.state.container  # type: ignore[attr-defined]
    usage = sandbox_client.post(
        "/v1/usage",
        content=b'{"records":' + b"[" * 100_000,
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
    )
    assert usage.status_code == 400
    assert "nests too deeply" in usage.json()["detail"]
    api = sandbox_client.post(
        "/api/v1/entitlements/e-1/approve",
        content=b'{"reason":' + b"[" * 60_000,  # under the console API's 64 KiB cap
        headers={**_basic(), "Content-Type": "application/json"},
    )
    assert api.status_code in (400, 422)
    assert _inbox_rows(container) == 0


# -- finding 9: headers ---------------------------------------------------------------------------


def _strict(answer: httpx.Response) -> None:
    assert answer.headers["content-security-policy"] == guards.CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_sign_up_pages_and_console_422_answers_carry_the_strict_headers(
    sandbox_client: TestClient,
) -> None:
    """The sign-up pages (CSP, nosniff) and validation errors of the console and its API."""
    _strict(sandbox_client.get("/signup"))
    _strict(sandbox_client.post("/signup", data={}))
    _strict(sandbox_client.get("/welcome"))
    _strict(sandbox_client.get("/healthz"))
    sign_in(sandbox_client, OPERATOR)
    invalid_page = sandbox_client.get("/admin/entitlements/x?hours=-5")
    assert invalid_page.status_code == 422
    _strict(invalid_page)
    invalid_api = sandbox_client.get("/api/v1/entitlements/x/usage?hours=-5")
    assert invalid_api.status_code == 422
    _strict(invalid_api)
    assert "strict-transport-security" not in invalid_api.headers  # the sandbox is plain HTTP


def test_pages_for_people_and_html_error_pages_carry_the_strict_headers(
    sandbox_client: TestClient,
) -> None:
    """The start page, `GET /login`'s explanation and the HTML 404/405 pages (home.py) get the
    same headers as every other answer; a JSON surface's 404 too."""
    for path in ("/", "/login"):
        page = sandbox_client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        _strict(page)
    missing = sandbox_client.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    _strict(missing)
    wrong_method = sandbox_client.delete("/signup")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("text/html")
    _strict(wrong_method)
    json_missing = sandbox_client.get("/api/v1/no-such-thing")
    assert json_missing.status_code in (401, 404)
    _strict(json_missing)


def test_production_answers_carry_hsts_unless_a_proxy_adds_it(
    make_container: ContainerFactory,
) -> None:
    """HSTS on every answer outside the sandbox; HSTS_MAX_AGE=0 leaves it to the proxy."""
    with TestClient(create_app(make_container(**PRODUCTION))) as client:
        for answer in (client.get("/healthz"), client.get("/signup"), client.get("/admin/login")):
            assert answer.headers["strict-transport-security"] == "max-age=31536000"
    with TestClient(create_app(make_container(**PRODUCTION, hsts_max_age=0))) as client:
        assert "strict-transport-security" not in client.get("/healthz").headers


def test_the_served_app_sends_no_server_header(container: Container) -> None:
    """`serve`'s web server does not announce itself (`server: uvicorn`)."""
    port = free_port()
    web = WebServer(create_app(container), "127.0.0.1", port)
    web.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        web.stop()
    assert answer.status_code == 200
    assert "server" not in answer.headers
    _strict(answer)


# -- finding 11: Origin on console posts ----------------------------------------------------------


def test_console_posts_from_a_foreign_origin_are_refused_even_with_a_valid_csrf_token(
    sandbox_client: TestClient,
) -> None:
    """A valid CSRF token with `Origin: https://evil.example` is refused (403) and does nothing;
    the same post from the console's own origin goes through."""
    token = sign_in(sandbox_client, OPERATOR)
    foreign = sandbox_client.post(
        "/admin/logout",
        data={"csrf_token": token},
        headers={"Origin": EVIL},
        follow_redirects=False,
    )
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    assert sandbox_client.get("/admin/approvals").status_code == 200  # still signed in
    api = sandbox_client.post(
        "/api/v1/notifications/x/replay", json={}, headers={**_basic(), "Origin": EVIL}
    )
    assert api.status_code == 403
    assert "another site" in api.json()["error"]["message"]
    null_origin = sandbox_client.post(
        "/admin/logout", data={"csrf_token": token}, headers={"Origin": "null"}
    )
    assert null_origin.status_code == 403
    own = sandbox_client.post(
        "/admin/logout",
        data={"csrf_token": token},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert own.status_code == 303
    assert sandbox_client.get("/admin/approvals", follow_redirects=False).status_code == 303
