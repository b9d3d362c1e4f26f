"""Receivers from HOOK_RECEIVERS, webhook requests, payload round trips and the retry schedule."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from marketplace_saas import webhooks
from marketplace_saas.adapters.hooks import (
    Delivery,
    DeliveryFailed,
    PythonReceiver,
    WebhookReceiver,
    validate_receivers,
)
from marketplace_saas.config import ConfigurationError, Settings
from marketplace_saas.domain.hooks import (
    AccountInfo,
    CustomerInfo,
    EntitlementInfo,
    HookPayload,
    RetryPolicy,
)

SECRET = "unit-test-webhook-secret-0123456789abcdef"


def settings(receivers: str, *, sandbox: bool = True, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "hook_receivers": receivers,
        "marketplace_sandbox": sandbox,
        "hook_webhook_secret": SECRET,
        **extra,
    }
    if not sandbox:
        values |= {"google_cloud_project": "p", "session_secret": "s" * 40}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def delivery(hook: str = "entitlement.active") -> Delivery:
    return Delivery(
        item_id=7,
        hook=hook,
        idempotency_key=f"{hook}:ent-1:v1",
        payload=HookPayload(
            account=AccountInfo(id="acct-1"),
            entitlement=EntitlementInfo(id="ent-1", account_id="acct-1", state="ACTIVE"),
            plan="pro",
        ),
        attempt=1,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_patterns_route_hooks_to_receivers_and_one_target_collects_its_patterns() -> None:
    receivers = validate_receivers(
        settings(
            "entitlement.*=https://app.example.com/h,"
            "account.deleted=python:json:dumps,"
            "customer.signed_up=https://app.example.com/h"
        )
    )
    assert len(receivers) == 2
    assert [r.target for r in receivers.for_hook("entitlement.cancelled")] == [
        "https://app.example.com/h"
    ]
    assert [r.target for r in receivers.for_hook("customer.signed_up")] == [
        "https://app.example.com/h"
    ]
    assert [r.target for r in receivers.for_hook("account.deleted")] == ["python:json:dumps"]


def test_a_receiver_without_a_pattern_wants_every_hook_and_a_query_string_is_not_a_pattern() -> (
    None
):
    [receiver] = validate_receivers(settings("https://app.example.com/h?token=abc")).receivers
    assert receiver.target == "https://app.example.com/h?token=abc"
    assert receiver.wants("account.deleted")
    assert receiver.wants("entitlement.renewed")


def test_empty_configuration_means_no_receivers() -> None:
    assert not validate_receivers(settings(" , "))


@pytest.mark.parametrize(
    ("receivers", "message"),
    [
        ("python:json", "not of the form python:package.module:function"),
        ("python:no_such_module_abc:f", "cannot import module 'no_such_module_abc'"),
        ("python:json:nope", "has no attribute 'nope'"),
        ("python:json:__doc__", "is not callable"),
        ("mailto:ops@example.com", "a receiver is python:module:function or an https:// URL"),
        ("https://exa mple.com:99999/h", "bad URL"),
        ("billing.*=https://a.example/h", "matches no hook"),
    ],
)
def test_misconfigured_receivers_are_refused_with_a_message_naming_them(
    receivers: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match="HOOK_RECEIVERS") as raised:
        validate_receivers(settings(receivers))
    assert message in str(raised.value)


def test_plain_http_is_refused_outside_the_sandbox_except_for_loopback() -> None:
    with pytest.raises(ConfigurationError, match="must use https"):
        validate_receivers(settings("http://app.example.com/h", sandbox=False))
    assert validate_receivers(settings("http://127.0.0.1:9000/h", sandbox=False))
    assert validate_receivers(settings("http://localhost:9000/h", sandbox=False))


def test_webhooks_need_a_long_secret_outside_the_sandbox_and_get_a_default_inside() -> None:
    with pytest.raises(ConfigurationError, match="HOOK_WEBHOOK_SECRET must be set"):
        validate_receivers(settings("https://a.example/h", sandbox=False, hook_webhook_secret=None))
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        validate_receivers(settings("https://a.example/h", sandbox=False, hook_webhook_secret="x"))
    [receiver] = validate_receivers(
        settings("https://a.example/h", hook_webhook_secret=None)
    ).receivers
    assert isinstance(receiver, WebhookReceiver)
    assert receiver.secrets  # the sandbox's own secret


def test_a_webhook_is_a_signed_post_with_the_idempotency_key_and_the_envelope() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    receiver = WebhookReceiver(
        "https://app.example.com/h", (SECRET,), 5.0, transport=httpx.MockTransport(handler)
    )
    receiver.deliver(delivery())
    [request] = seen
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == "entitlement.active:ent-1:v1"
    assert request.headers["Marketplace-Hook"] == "entitlement.active"
    event = webhooks.verify(request.content, request.headers["Marketplace-Signature"], SECRET)
    assert event["id"] == "entitlement.active:ent-1:v1"
    assert event["data"]["entitlement"]["id"] == "ent-1"
    assert event["data"]["plan"] == "pro"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, text="boom"), "HTTP 500: boom"),
        (httpx.Response(302, headers={"Location": "https://elsewhere/"}), "HTTP 302"),
        (httpx.Response(404), "HTTP 404"),
    ],
)
def test_a_non_2xx_answer_or_a_redirect_fails_the_attempt(
    response: httpx.Response, message: str
) -> None:
    receiver = WebhookReceiver(
        "https://app.example.com/h",
        (SECRET,),
        5.0,
        transport=httpx.MockTransport(lambda _request: response),
    )
    with pytest.raises(DeliveryFailed, match=message):
        receiver.deliver(delivery())


def test_a_raising_callable_fails_the_attempt_with_its_error() -> None:
    def broken(hook: str, payload: HookPayload, *, idempotency_key: str) -> None:
        raise KeyError("workspace quota")

    with pytest.raises(DeliveryFailed, match="KeyError"):
        PythonReceiver("python:x:broken", broken).deliver(delivery())


def test_a_callable_that_does_not_return_in_time_fails_the_attempt() -> None:
    """A hung function is abandoned after the timeout, so the item is retried, not stuck."""
    release = threading.Event()
    called = threading.Event()

    def hangs(hook: str, payload: HookPayload, *, idempotency_key: str) -> None:
        called.set()
        release.wait(30)

    receiver = PythonReceiver("python:x:hangs", hangs, timeout=0.2)
    try:
        with pytest.raises(DeliveryFailed, match=r"did not return within 0\.2s"):
            receiver.deliver(delivery())
        assert called.is_set()
    finally:
        release.set()


def test_a_callable_that_returns_in_time_succeeds_with_the_idempotency_key() -> None:
    """The worker thread passes hook, payload and idempotency key, and success is success."""
    seen: list[tuple[str, str]] = []

    def works(hook: str, payload: HookPayload, *, idempotency_key: str) -> None:
        seen.append((hook, idempotency_key))

    item = delivery()
    PythonReceiver("python:x:works", works, timeout=30).deliver(item)
    assert seen == [(item.hook, item.idempotency_key)]


def test_python_receivers_take_the_configured_timeout() -> None:
    """HOOK_TIMEOUT_SECONDS bounds Python receivers as it bounds webhooks."""
    settings = Settings(
        _env_file=None,
        marketplace_sandbox=True,
        hook_receivers="python:marketplace_saas.webhooks:verify",
        hook_timeout_seconds=3.5,
    )
    [receiver] = validate_receivers(settings).receivers
    assert isinstance(receiver, PythonReceiver)
    assert receiver.timeout == 3.5


def test_a_payload_survives_the_round_trip_through_json() -> None:
    payload = HookPayload(
        customer=CustomerInfo(id="c1", name="Ada", email="ada@example.com"),
        account=AccountInfo(id="a1", state="ACCOUNT_ACTIVE", signup_approval="APPROVED"),
        entitlement=EntitlementInfo(id="e1", account_id="a1", state="ENTITLEMENT_ACTIVE"),
        plan="pro",
        previous_plan="basic",
        reason="user-cancelled",
        extra={"k": [1, 2]},
    )
    assert HookPayload.from_dict(json.loads(json.dumps(payload.to_dict()))) == payload
    assert payload.default_ordering_key() == "e1"
    assert HookPayload(account=AccountInfo(id="a1")).default_ordering_key() == "a1"


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=4, base_seconds=10, cap_seconds=60)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = {policy.delay(attempt, rng) for _ in range(50)}
        assert all(
            timedelta(seconds=ceiling / 2) <= d <= timedelta(seconds=ceiling) for d in delays
        )
        assert len(delays) > 1  # jittered, so many dispatchers do not retry in lockstep
    assert not policy.exhausted(3)
    assert policy.exhausted(4)
