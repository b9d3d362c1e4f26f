"""The public webhook signature helper: what a provider's app uses to trust our calls."""

from __future__ import annotations

import json

import pytest

from marketplace_saas import webhooks
from marketplace_saas.webhooks import (
    MalformedSignature,
    SignatureError,
    SignatureMismatch,
    TimestampOutOfRange,
)

SECRET = "whsec_test_0123456789abcdef0123456789"
BODY = b'{"id":"k1","hook":"entitlement.active"}'
T = 1_718_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    """Pinned against `openssl dgst -sha256 -hmac` so the scheme can never drift silently."""
    expected = "d2e7d6607f804f33bc435f124f844b0ab2e2b3d07d95e6c5ee3926ce5cf51a94"
    assert webhooks.compute_signature(BODY, SECRET, T) == expected
    assert webhooks.sign(BODY, SECRET, timestamp=T) == f"t={T},v1={expected}"


def test_a_signed_body_verifies_and_returns_the_parsed_event() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=T)
    assert webhooks.verify(BODY, header, SECRET, now=T + 10) == json.loads(BODY)


def test_a_body_changed_after_signing_is_rejected() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=T)
    tampered = BODY.replace(b"active", b"cancelled")
    with pytest.raises(SignatureMismatch):
        webhooks.verify(tampered, header, SECRET, now=T)


def test_a_signature_made_with_another_secret_is_rejected() -> None:
    header = webhooks.sign(BODY, "another-secret-of-enough-length-000000", timestamp=T)
    with pytest.raises(SignatureMismatch):
        webhooks.verify(BODY, header, SECRET, now=T)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    """The timestamp is signed: moving it forward to dodge replay protection fails."""
    header = webhooks.sign(BODY, SECRET, timestamp=T)
    forged = header.replace(f"t={T}", f"t={T + 1000}")
    with pytest.raises(SignatureMismatch):
        webhooks.verify(BODY, forged, SECRET, now=T + 1000)


@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_a_timestamp_outside_the_tolerance_is_rejected_as_a_replay(skew: int) -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=T)
    with pytest.raises(TimestampOutOfRange):
        webhooks.verify(BODY, header, SECRET, now=T + skew)


def test_the_tolerance_is_configurable() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=T)
    assert webhooks.verify_signature(BODY, header, SECRET, tolerance=900, now=T + 600) == T
    with pytest.raises(TimestampOutOfRange):
        webhooks.verify_signature(BODY, header, SECRET, tolerance=60, now=T + 61)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=abc",  # no timestamp
        f"t={T}",  # no signature
        f"t=yesterday,v1={'0' * 64}",
        "garbage",
        f"t={T};v1={'0' * 64}",
    ],
)
def test_a_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    with pytest.raises(MalformedSignature):
        webhooks.verify(BODY, header, SECRET, now=T)


def test_during_a_rotation_either_secret_verifies() -> None:
    """We sign with every configured secret; a receiver holding only one still accepts."""
    old, new = "old-secret-0123456789-0123456789-0123", "new-secret-0123456789-0123456789-0123"
    header = webhooks.sign(BODY, [new, old], timestamp=T)
    assert header.count("v1=") == 2
    assert webhooks.verify_signature(BODY, header, old, now=T) == T
    assert webhooks.verify_signature(BODY, header, new, now=T) == T
    # A receiver that already trusts both accepts a request signed with the old one only.
    only_old = webhooks.sign(BODY, old, timestamp=T)
    assert webhooks.verify_signature(BODY, only_old, [new, old], now=T) == T


def test_an_unknown_signature_scheme_next_to_v1_is_ignored() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=T) + ",v2=future"
    assert webhooks.verify_signature(BODY, header, SECRET, now=T) == T


def test_a_valid_signature_over_a_body_that_is_not_a_json_object_is_still_rejected() -> None:
    body = b"[1, 2, 3]"
    header = webhooks.sign(body, SECRET, timestamp=T)
    with pytest.raises(SignatureError):
        webhooks.verify(body, header, SECRET, now=T)


def test_an_empty_secret_is_a_programming_error_not_a_pass() -> None:
    with pytest.raises(ValueError):
        webhooks.sign(BODY, "", timestamp=T)
    header = webhooks.sign(BODY, SECRET, timestamp=T)
    with pytest.raises(ValueError):
        webhooks.verify(BODY, header, [], now=T)
