"""Sign-up tokens minted by the tests with their own RSA keys, good ones and every kind of forgery.

A `SigningKey` is an RSA key with a self-signed certificate; `certs_document(*keys)` is what a
certificates endpoint serves (`{kid: PEM}`); `mint(...)` signs any header and payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from marketplace_saas.config import CLOUD_COMMERCE_PARTNER_ISS

AUDIENCE = "saas.example.test"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str


@cache
def signing_key(name: str) -> SigningKey:
    """An RSA key and certificate per name, generated once per test session (2048-bit is slow)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test-{name}")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return SigningKey(kid=f"kid-{name}", private_key=private, certificate_pem=pem)


def certs_document(*keys: SigningKey) -> dict[str, str]:
    return {key.kid: key.certificate_pem for key in keys}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(
    account: str = "acct-1",
    *,
    audience: str = AUDIENCE,
    issuer: str = CLOUD_COMMERCE_PARTNER_ISS,
    now: float | None = None,
    ttl: int = 300,
    user_identity: str | None = "user-42",
    **extra: Any,
) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": account,
        "iat": issued,
        "exp": issued + ttl,
        "google": {"roles": ["account_admin"]},
    }
    if user_identity is not None:
        payload["google"]["user_identity"] = user_identity
    payload.update(extra)
    return payload


def mint(key: SigningKey, payload: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
    """An RS256 token signed with `key` (the header may be overridden, e.g. another `kid`)."""
    head = {"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})}
    signing_input = f"{_segment(head)}.{_segment(payload)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def mint_unsigned(payload: dict[str, Any], *, kid: str = "kid-good") -> str:
    """`alg: none` with an empty signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_segment(payload)}."


def mint_hs256_with_public_cert(key: SigningKey, payload: dict[str, Any]) -> str:
    """The classic confusion attack: HS256 keyed with the (public) certificate text."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    mac = hmac.new(key.certificate_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tamper(token: str, **changes: Any) -> str:
    """The same header and signature over a modified payload."""
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{head}.{_segment(payload)}.{signature}"
