"""The sign-up token verifier: every forgery is refused with a precise reason; good tokens pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from marketplace_saas.adapters.tokens import (
    CertificateCache,
    InvalidSignupToken,
    SignupTokenVerifier,
    parse_orders,
)
from tests.support.signup_tokens import (
    AUDIENCE,
    b64url,
    certs_document,
    claims,
    mint,
    mint_hs256_with_public_cert,
    mint_unsigned,
    signing_key,
    tamper,
)

CERTS_URL = "https://certs.example.test/x509/cloud-commerce-partner"


class CertsEndpoint:
    """A certificates endpoint behind httpx.MockTransport; counts requests, documents may change."""

    def __init__(self, document: dict[str, Any], cache_control: str = "max-age=3600") -> None:
        self.document = document
        self.cache_control = cache_control
        self.requests = 0
        self.status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == CERTS_URL, "the verifier must only read the pinned URL"
        self.requests += 1
        headers = {"cache-control": self.cache_control}
        return httpx.Response(self.status, json=self.document, headers=headers)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def endpoint() -> CertsEndpoint:
    return CertsEndpoint(certs_document(signing_key("good")))


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def make_verifier(
    endpoint: CertsEndpoint, monotonic: FakeMonotonic
) -> Callable[..., SignupTokenVerifier]:
    def make(**kwargs: Any) -> SignupTokenVerifier:
        cache = CertificateCache(CERTS_URL, client=endpoint.client(), monotonic=monotonic)
        return SignupTokenVerifier(cache, AUDIENCE, **kwargs)

    return make


@pytest.fixture
def verifier(make_verifier: Callable[..., SignupTokenVerifier]) -> SignupTokenVerifier:
    return make_verifier()


def reason_of(verifier: SignupTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidSignupToken) as caught:
        verifier.verify(token)
    assert token not in str(caught.value), "the error must never carry the token"
    return caught.value.reason


def test_a_good_token_yields_account_identity_roles_and_orders(
    verifier: SignupTokenVerifier,
) -> None:
    payload = claims("acct-7", user_identity="u-1")
    payload["google"]["orders"] = ["order-1", {"orderId": "order-2"}]
    verified = verifier.verify(mint(signing_key("good"), payload))
    assert verified.account_id == "acct-7"
    assert verified.user_identity == "u-1"
    assert verified.roles == ("account_admin",)
    assert verified.orders == ("order-1", "order-2")
    assert verified.key_id == "kid-good"
    assert verified.expires_at > verified.issued_at


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        pytest.param(lambda: mint(signing_key("good"), claims(ttl=-120, now=time.time() - 600)),
                     "expired", id="expired"),
        pytest.param(lambda: mint(signing_key("other"), claims(), header={"kid": "kid-good"}),
                     "bad_signature", id="forged-with-another-key-under-a-known-kid"),
        pytest.param(lambda: mint(signing_key("good"), claims(audience="evil.example")),
                     "wrong_audience", id="wrong-audience"),
        pytest.param(lambda: mint(signing_key("good"), claims(issuer="https://evil.example/certs")),
                     "wrong_issuer", id="wrong-issuer"),
        pytest.param(lambda: mint_unsigned(claims()), "bad_algorithm", id="alg-none"),
        pytest.param(lambda: mint_hs256_with_public_cert(signing_key("good"), claims()),
                     "bad_algorithm", id="hs256-keyed-with-the-public-certificate"),
        pytest.param(lambda: tamper(mint(signing_key("good"), claims("acct-1")), sub="acct-2"),
                     "bad_signature", id="tampered-payload"),
        pytest.param(lambda: mint(signing_key("other"), claims()),
                     "unknown_kid", id="unknown-kid"),
        pytest.param(lambda: mint(signing_key("good"), claims(now=time.time() + 600)),
                     "not_yet_valid", id="issued-in-the-future"),
        pytest.param(lambda: mint(signing_key("good"), claims(sub="")), "missing_subject",
                     id="empty-subject"),
        pytest.param(lambda: mint(signing_key("good"), claims(), header={"kid": None}),
                     "missing_kid", id="no-kid"),
        pytest.param(lambda: mint(signing_key("good"), claims(exp=float("inf"))),
                     "malformed", id="infinite-expiry"),
        pytest.param(lambda: mint(signing_key("good"), {k: v for k, v in claims().items()
                                                        if k != "exp"}),
                     "malformed", id="no-expiry"),
        pytest.param(lambda: "not-a-jwt", "malformed", id="garbage"),
        pytest.param(lambda: "a.b.c", "malformed", id="three-garbage-segments"),
        pytest.param(lambda: mint(signing_key("good"), claims())[:-6], "bad_signature",
                     id="truncated-signature"),
        pytest.param(lambda: "x" * 20_000, "malformed", id="oversized"),
    ],
)  # fmt: skip
def test_forged_or_invalid_tokens_are_refused_with_their_reason(
    verifier: SignupTokenVerifier, forge: Callable[[], str], reason: str
) -> None:
    assert reason_of(verifier, forge()) == reason


def test_an_algorithm_refusal_happens_before_any_certificate_is_fetched(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint
) -> None:
    """`alg: none` and HS256 are refused on the header alone: no request to the certs URL."""
    reason_of(verifier, mint_unsigned(claims()))
    reason_of(verifier, mint_hs256_with_public_cert(signing_key("good"), claims()))
    assert endpoint.requests == 0


def test_the_clock_skew_tolerates_a_slightly_expired_token(
    make_verifier: Callable[..., SignupTokenVerifier],
) -> None:
    token = mint(signing_key("good"), claims(now=time.time() - 310, ttl=300))  # expired 10 s ago
    assert make_verifier(clock_skew_seconds=30).verify(token).account_id == "acct-1"
    assert reason_of(make_verifier(clock_skew_seconds=0), token) == "expired"


def test_an_audience_list_containing_ours_is_accepted(verifier: SignupTokenVerifier) -> None:
    token = mint(signing_key("good"), claims(audience=[AUDIENCE, "other"]))  # type: ignore[arg-type]
    assert verifier.verify(token).audience == AUDIENCE


def test_certificates_are_fetched_once_and_served_from_the_cache(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint
) -> None:
    for _ in range(5):
        verifier.verify(mint(signing_key("good"), claims()))
    assert endpoint.requests == 1


def test_cache_control_max_age_decides_when_certificates_are_refetched(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint, monotonic: FakeMonotonic
) -> None:
    endpoint.cache_control = "public, max-age=120, must-revalidate"
    token = mint(signing_key("good"), claims())
    verifier.verify(token)
    monotonic.value += 119
    verifier.verify(token)
    assert endpoint.requests == 1
    monotonic.value += 2
    verifier.verify(token)
    assert endpoint.requests == 2


def test_an_unknown_kid_triggers_one_refresh_that_picks_up_a_rotated_key(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint, monotonic: FakeMonotonic
) -> None:
    verifier.verify(mint(signing_key("good"), claims()))
    endpoint.document = certs_document(signing_key("good"), signing_key("rotated"))
    monotonic.value += 60
    assert verifier.verify(mint(signing_key("rotated"), claims())).key_id == "kid-rotated"
    assert endpoint.requests == 2


def test_a_flood_of_unknown_kids_refreshes_at_most_once_per_interval(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint, monotonic: FakeMonotonic
) -> None:
    verifier.verify(mint(signing_key("good"), claims()))
    monotonic.value += 60
    for number in range(20):
        token = mint(signing_key("other"), claims(), header={"kid": f"made-up-{number}"})
        assert reason_of(verifier, token) == "unknown_kid"
    assert endpoint.requests == 2  # the first fetch, and one refresh for the whole flood


def test_a_failed_refresh_keeps_the_certificates_already_held(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint, monotonic: FakeMonotonic
) -> None:
    endpoint.cache_control = "max-age=60"
    token = mint(signing_key("good"), claims())
    verifier.verify(token)
    endpoint.status = 503
    monotonic.value += 61
    assert verifier.verify(token).account_id == "acct-1"
    assert endpoint.requests == 2


def test_an_unreachable_certificates_endpoint_with_nothing_cached_is_unavailable(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint
) -> None:
    from marketplace_saas.adapters.tokens import CertificatesUnavailable

    endpoint.status = 500
    token = mint(signing_key("good"), claims())
    with pytest.raises(CertificatesUnavailable):
        verifier.verify(token)
    with pytest.raises(CertificatesUnavailable):
        verifier.verify(token)
    assert endpoint.requests == 1, "retries of a dead endpoint are rate-limited too"


def test_a_jwk_set_document_is_accepted_as_well_as_x509_certificates(
    verifier: SignupTokenVerifier, endpoint: CertsEndpoint
) -> None:
    numbers = signing_key("good").private_key.public_key().public_numbers()

    def uint(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    endpoint.document = {
        "keys": [{"kty": "RSA", "kid": "kid-good", "n": uint(numbers.n), "e": uint(numbers.e)}]
    }
    assert verifier.verify(mint(signing_key("good"), claims())).key_id == "kid-good"


@pytest.mark.parametrize(
    ("payload", "orders"),
    [
        ({"google": {"orders": ["o-1", "o-2"]}}, ("o-1", "o-2")),
        ({"orders": [{"orderId": "o-3"}]}, ("o-3",)),
        ({"google": {"orders": [{"orderId": "o-1"}]}, "orders": ["o-1", "o-4"]}, ("o-1", "o-4")),
        ({"google": {"orders": "o-5"}}, ("o-5",)),
        ({"google": {"orders": [None, 3, {"id": "x"}, " "]}}, ()),
        ({}, ()),
    ],
)
def test_orders_are_read_from_google_orders_and_top_level_orders_as_strings_or_objects(
    payload: dict[str, Any], orders: tuple[str, ...]
) -> None:
    assert parse_orders(payload) == orders
