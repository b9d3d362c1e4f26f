"""`POST /pubsub/push`: the push envelope in, the lifecycle service, 2xx acks and 503 retries."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import InboxMessage
from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.support.signup_tokens import mint, signing_key

pytestmark = pytest.mark.integration

SUBSCRIPTION = f"projects/sandbox/subscriptions/{PROVIDER}-push"


def envelope(data: bytes | str, message_id: str = "m-1") -> dict[str, Any]:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {
        "message": {
            "data": encoded,
            "messageId": message_id,
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": SUBSCRIPTION,
    }


def inbox(container: Container) -> list[InboxMessage]:
    with container.sessions() as session:
        return list(session.scalars(sa.select(InboxMessage).order_by(InboxMessage.id)))


def creation_notification(emulator: Emulator) -> tuple[dict[str, Any], str]:
    """A purchase on the emulator; its ENTITLEMENT_CREATION_REQUESTED payload and the id."""
    _account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    for payload in emulator.notifications(PROVIDER):
        if payload.get("eventType") == "ENTITLEMENT_CREATION_REQUESTED":
            return payload, entitlement.id
    raise AssertionError("the emulator published no ENTITLEMENT_CREATION_REQUESTED")


def test_push_of_a_notification_is_stored_processed_and_acked_with_200(
    emulator: Emulator, container: Container
) -> None:
    payload, entitlement_id = creation_notification(emulator)
    with TestClient(create_app(container)) as client:
        response = client.post("/pubsub/push", json=envelope(json.dumps(payload).encode()))
    assert response.status_code == 200, response.text
    rows = inbox(container)
    assert [(r.event_id, r.source, r.message_id) for r in rows] == [
        (payload["eventId"], "push", "m-1")
    ]
    assert rows[0].status in {"processed", "ignored"}
    assert rows[0].subject_id == entitlement_id


def test_push_of_the_same_event_twice_is_acked_twice_and_stored_once(
    emulator: Emulator, container: Container
) -> None:
    payload, _ = creation_notification(emulator)
    body = envelope(json.dumps(payload).encode())
    with TestClient(create_app(container)) as client:
        first = client.post("/pubsub/push", json=body)
        second = client.post("/pubsub/push", json=body)
    assert (first.status_code, second.status_code) == (200, 200)
    rows = inbox(container)
    assert len(rows) == 1
    assert rows[0].deliveries == 2


def test_push_answers_503_while_the_procurement_api_fails_so_pubsub_retries(
    emulator: Emulator, container: Container
) -> None:
    payload, _ = creation_notification(emulator)
    emulator.faults.configure(
        FaultSettings.model_validate({"procurement": {"errorRate": 1.0, "statuses": [503]}})
    )
    with TestClient(create_app(container)) as client:
        response = client.post("/pubsub/push", json=envelope(json.dumps(payload).encode()))
        assert response.status_code == 503
        [row] = inbox(container)
        assert row.status == "retrying"
        assert row.last_error
        emulator.faults.clear()
        retried = client.post("/pubsub/push", json=envelope(json.dumps(payload).encode()))
    assert retried.status_code == 200
    [row] = inbox(container)
    assert row.status in {"processed", "ignored"}


def test_undecodable_notification_data_is_recorded_invalid_and_acked(
    container: Container,
) -> None:
    """Valid base64 of bytes that are not a notification: it will never become valid, so 200."""
    with TestClient(create_app(container)) as client:
        response = client.post("/pubsub/push", json=envelope(b"\xff\xfe not json"))
    assert response.status_code == 200
    [row] = inbox(container)
    assert row.status == "invalid"
    assert row.last_error


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"subscription": "x"}', "no `message` object"),
        (b'{"message": {"data": 42}}', "not a base64 string"),
    ],
)
def test_a_body_that_is_not_a_push_envelope_is_a_400_with_the_reason(
    container: Container, body: bytes, reason: str
) -> None:
    with TestClient(create_app(container)) as client:
        response = client.post(
            "/pubsub/push", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert inbox(container) == []


def test_data_that_is_not_base64_is_a_400_and_recorded_as_invalid(container: Container) -> None:
    with TestClient(create_app(container)) as client:
        response = client.post("/pubsub/push", json=envelope("***not base64***"))
    assert response.status_code == 400
    assert "base64" in response.json()["error"]
    [row] = inbox(container)
    assert row.status == "invalid"


# -- OIDC ------------------------------------------------------------------------------------------

AUDIENCE = "https://saas.example.test/pubsub/push"
PUSHER = "pubsub-push@provider-project.iam.gserviceaccount.com"


class CertsTransport:
    """A google-auth transport serving the test key's certificate for any GET."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.certs = certs
        self.calls = 0

    def __call__(self, url: str, method: str = "GET", **_: Any) -> Any:
        self.calls += 1
        body = json.dumps(self.certs).encode()

        class Response:
            status = 200
            headers: dict[str, str] = {}
            data = body

        return Response()


def oidc_token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": PUSHER,
        "email_verified": True,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 600,
        **overrides,
    }
    return mint(signing_key("pubsub-oidc"), claims)


@pytest.fixture
def oidc_client(emulator: Emulator, make_container: ContainerFactory) -> TestClient:
    container = make_container(push_audience=AUDIENCE, push_service_account=PUSHER)
    app = create_app(container)
    key = signing_key("pubsub-oidc")
    app.state.oidc_transport = CertsTransport({key.kid: key.certificate_pem})
    return TestClient(app)


# Tokens are minted when the test runs (not at collection: a long suite would expire them).
WRONG_TOKENS: list[tuple[Callable[[], dict[str, str]], int]] = [
    (dict, 401),
    (lambda: {"authorization": "Basic abc"}, 401),
    (lambda: {"authorization": "Bearer not-a-jwt"}, 401),
    (lambda: {"authorization": f"Bearer {oidc_token(aud='https://other.example/push')}"}, 401),
    (lambda: {"authorization": f"Bearer {oidc_token(exp=int(time.time()) - 3600)}"}, 401),
    (lambda: {"authorization": f"Bearer {oidc_token(email='intruder@example.com')}"}, 403),
    (lambda: {"authorization": f"Bearer {oidc_token(email_verified=False)}"}, 403),
]


@pytest.mark.parametrize(("make_headers", "status"), WRONG_TOKENS)
def test_with_push_audience_set_a_missing_or_wrong_oidc_token_is_refused(
    oidc_client: TestClient, make_headers: Callable[[], dict[str, str]], status: int
) -> None:
    headers = make_headers()
    container: Container = oidc_client.app.state.container  # type: ignore[attr-defined]
    response = oidc_client.post("/pubsub/push", json=envelope(b"{}"), headers=headers)
    assert response.status_code == status, response.text
    assert inbox(container) == []


def test_with_push_audience_set_pubsubs_token_is_accepted(
    emulator: Emulator, oidc_client: TestClient
) -> None:
    payload, _ = creation_notification(emulator)
    token = oidc_token()
    response = oidc_client.post(
        "/pubsub/push",
        json=envelope(json.dumps(payload).encode()),
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    container: Container = oidc_client.app.state.container  # type: ignore[attr-defined]
    assert [row.event_id for row in inbox(container)] == [payload["eventId"]]
