"""The push OIDC check (`PUSH_AUDIENCE`, `PUSH_SERVICE_ACCOUNT`, `PUSH_CERTS_URL`) end to end:
the emulator pushes over HTTP, signing each request as Pub/Sub does, to the backend served by
uvicorn; the backend fetches the emulator's certificates. Forged, expired, wrong-audience and
wrong-account tokens are refused and nothing is stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from marketplace_emulator.identity.models import encode_rs256, generate_signing_key
from marketplace_emulator.identity.oauth import OIDC_X509_PATH
from marketplace_emulator.server import Emulator, RunningEmulator, free_port, run_in_thread
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.entrypoints.cli.serve import WebServer
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.conftest import PROVIDER, backend_settings
from tests.integration.backend.test_push_endpoint import envelope, inbox

pytestmark = pytest.mark.integration

PUSHER = "marketplace-push@provider-project.iam.gserviceaccount.com"


class Stack:
    def __init__(self, running: RunningEmulator, container: Container, url: str) -> None:
        self.running = running
        self.emulator = running.emulator
        self.container = container
        self.push_url = f"{url}/pubsub/push"


@pytest.fixture
def stack(migrated_database_url: str) -> Iterator[Stack]:
    port = free_port()
    push_url = f"http://127.0.0.1:{port}/pubsub/push"
    emulator = Emulator(providers=[PROVIDER], push_endpoint=push_url, push_auth=(PUSHER, push_url))
    running = run_in_thread(emulator)
    settings = backend_settings(
        migrated_database_url,
        running.url,
        push_audience=push_url,
        push_service_account=PUSHER,
        push_certs_url=f"{running.url}{OIDC_X509_PATH}",
    )
    container = bootstrap(settings)
    web = WebServer(create_app(container), "127.0.0.1", port)
    web.start()
    try:
        yield Stack(running, container, f"http://127.0.0.1:{port}")
    finally:
        web.stop()
        running.stop()
        emulator.close()
        container.close()


def test_the_emulators_signed_push_is_accepted_and_processed(stack: Stack) -> None:
    answer = httpx.post(
        f"{stack.running.url}/emulator/v1/providers/{PROVIDER}/purchases",
        json={"product": "example-product", "plan": "basic"},
    )
    answer.raise_for_status()
    assert stack.emulator.notifier.flush(timeout=20)
    stats = stack.emulator.notifier.stats()
    assert stats.delivered == 2, stats  # ACCOUNT_ACTIVE, ENTITLEMENT_CREATION_REQUESTED
    assert stats.retried == 0
    rows = inbox(stack.container)
    assert {row.event_type for row in rows} == {"ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"}
    assert all(row.status == "processed" for row in rows)


def _claims(stack: Stack, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "https://accounts.google.com",
        "aud": stack.push_url,
        "email": PUSHER,
        "email_verified": True,
        "sub": "1",
        "azp": "1",
        "iat": now,
        "exp": now + 600,
        **overrides,
    }


def _forged(stack: Stack) -> str:
    """Right claims, the emulator's key id, signed with another key."""
    genuine = stack.emulator.oauth.oidc_key()
    impostor = replace(generate_signing_key("accounts.google.com"), kid=genuine.kid)
    return encode_rs256(impostor, _claims(stack))


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)  # no SQL involved
@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged", 401),
        ("expired", 401),
        ("wrong audience", 401),
        ("wrong issuer", 401),
        ("other service account", 403),
        ("genuine", 200),
    ],
)
def test_a_push_is_refused_unless_its_oidc_token_is_genuine(
    stack: Stack, case: str, status: int
) -> None:
    oauth = stack.emulator.oauth
    now = int(time.time())
    key = oauth.oidc_key()
    token = {
        "forged": lambda: _forged(stack),
        "expired": lambda: encode_rs256(key, _claims(stack, iat=now - 7200, exp=now - 3600)),
        "wrong audience": lambda: oauth.mint_id_token(PUSHER, "https://elsewhere.test/push"),
        "wrong issuer": lambda: encode_rs256(key, _claims(stack, iss="https://evil.test")),
        "other service account": lambda: oauth.mint_id_token(
            "intruder@other-project.iam.gserviceaccount.com", stack.push_url
        ),
        "genuine": lambda: oauth.mint_id_token(PUSHER, stack.push_url),
    }[case]()
    response = httpx.post(
        stack.push_url,
        json=envelope(b'{"eventId": "e-1", "eventType": "UNKNOWN_TYPE", "providerId": "x"}'),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == status, response.text
    assert len(inbox(stack.container)) == (1 if status == 200 else 0)
