"""Verification of the sign-up JWT Google posts as `x-gcp-marketplace-token` (reference §3).

    TokenError                      the token cannot be trusted or cannot be checked now
     ├── InvalidSignupToken         refused: `reason` is a short code safe to log, never the token
     └── CertificatesUnavailable    the pinned certificates endpoint could not be read

The checks, in order: three base64url segments of JSON objects; header `alg` exactly `RS256`
(`none`, `HS256` and every other algorithm are refused before any key is looked at); a `kid`;
the signature, by google-auth's RSA verifier, against the certificate served under that `kid` at
the pinned `SIGNUP_CERTS_URL` (never a URL taken from the token); `iss` equal to Google's
cloud-commerce-partner URL; `aud` equal to `SIGNUP_AUDIENCE`; `iat` and `exp` within a small
clock skew; a non-empty `sub`.

The claims are checked here rather than by `google.auth.jwt.decode` so that each refusal has a
precise reason, the clock can be injected, and each certificate is parsed once, not per token.

`CertificateCache` keeps the `{kid: PEM}` document (or a JWK Set) for the response's
`Cache-Control: max-age` (one hour when absent), refetches once when an unknown `kid` arrives, and
rate-limits those refetches so that a flood of made-up `kid`s cannot hammer the endpoint. When a
refresh fails, the certificates already held keep working.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt

from marketplace_saas.config import CLOUD_COMMERCE_PARTNER_ISS

log = structlog.get_logger(__name__)

DEFAULT_CLOCK_SKEW_SECONDS = 30
DEFAULT_CERTS_MAX_AGE_SECONDS = 3600
MAX_CERTS_MAX_AGE_SECONDS = 24 * 3600
# At most one refetch for unknown `kid`s in this many seconds.
MIN_REFRESH_INTERVAL_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_TOKEN_LENGTH = 16 * 1024  # Google's tokens are about 1 KB; refuse absurd input early
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


class TokenError(Exception):
    """The sign-up token was not accepted."""


class InvalidSignupToken(TokenError):
    """The token is refused; `reason` is a code for logs, `message` a sentence for the buyer."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class CertificatesUnavailable(TokenError):
    """The certificates endpoint could not be read and no usable certificate is cached."""


@dataclass(frozen=True)
class SignupToken:
    """The verified claims of a sign-up token."""

    account_id: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    user_identity: str | None = None
    roles: tuple[str, ...] = ()
    orders: tuple[str, ...] = ()
    key_id: str = ""


def parse_orders(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """Order ids from `google.orders` and a top-level `orders`: strings or `{orderId}` objects.

    Google announced an `orders` object without confirming where it sits or its element shape
    (reference §3.3), so both places and both shapes are read; duplicates are dropped.
    """
    google = payload.get("google")
    sources = [google.get("orders") if isinstance(google, Mapping) else None, payload.get("orders")]
    found: list[str] = []
    for source in sources:
        items = source if isinstance(source, list) else [source] if source else []
        for item in items:
            order = item.get("orderId") if isinstance(item, Mapping) else item
            if isinstance(order, str) and order.strip() and order.strip() not in found:
                found.append(order.strip())
    return tuple(found)


def _b64decode(segment: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(segment: str) -> dict[str, Any]:
    value = json.loads(_b64decode(segment))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _verifier_for(material: str | Mapping[str, Any]) -> crypt.RSAVerifier:
    """An RSA verifier from a PEM certificate (the x509 form) or an RSA JWK (the jwk form)."""
    if isinstance(material, str):
        return _rsa_verifier(material)
    if material.get("kty") != "RSA":
        raise ValueError("not an RSA key")
    n = int.from_bytes(_b64decode(str(material["n"])), "big")
    e = int.from_bytes(_b64decode(str(material["e"])), "big")
    public = rsa.RSAPublicNumbers(e, n).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _rsa_verifier(pem)


def _rsa_verifier(pem: str | bytes) -> crypt.RSAVerifier:
    verifier: crypt.RSAVerifier = crypt.RSAVerifier.from_string(pem)  # type: ignore[no-untyped-call]
    return verifier


def _keys_from_document(document: object) -> dict[str, crypt.RSAVerifier]:
    """`{kid: PEM certificate}` or a JWK Set `{"keys": [...]}` -> verifiers by `kid`."""
    if not isinstance(document, dict):
        raise ValueError("the certificates document is not a JSON object")
    entries: dict[str, str | Mapping[str, Any]]
    if isinstance(document.get("keys"), list):
        entries = {
            str(jwk["kid"]): jwk
            for jwk in document["keys"]
            if isinstance(jwk, dict) and jwk.get("kid")
        }
    else:
        entries = {str(kid): pem for kid, pem in document.items() if isinstance(pem, str)}
    keys: dict[str, crypt.RSAVerifier] = {}
    for kid, material in entries.items():
        try:
            keys[kid] = _verifier_for(material)
        except (ValueError, KeyError, TypeError):
            log.warning("signup.certificate_unusable", kid=kid)
    if not keys:
        raise ValueError("the certificates document holds no usable RSA key")
    return keys


def _max_age(cache_control: str | None) -> int:
    match = _MAX_AGE.search(cache_control or "")
    if match is None:
        return DEFAULT_CERTS_MAX_AGE_SECONDS
    return min(int(match.group(1)), MAX_CERTS_MAX_AGE_SECONDS)


@dataclass
class CertificateCache:
    """The signing keys served at the pinned certificates URL, cached and refreshed on demand."""

    url: str
    client: httpx.Client | None = None
    monotonic: Callable[[], float] = time.monotonic
    min_refresh_interval: float = MIN_REFRESH_INTERVAL_SECONDS
    fetches: int = 0  # how many times the endpoint was read (for tests and metrics)
    _keys: dict[str, crypt.RSAVerifier] = field(default_factory=dict)
    _expires: float = float("-inf")
    _last_attempt: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verifier(self, kid: str) -> crypt.RSAVerifier | None:
        """The key for `kid`, fetching the document when the cache is stale or lacks `kid`."""
        now = self.monotonic()
        key = self._keys.get(kid)
        if key is not None and now < self._expires:
            return key
        with self._lock:
            now = self.monotonic()
            key = self._keys.get(kid)
            if key is not None and now < self._expires:
                return key  # another thread refreshed while we waited
            if now - self._last_attempt >= self.min_refresh_interval:
                self._refresh(now)
            elif not self._keys:
                raise CertificatesUnavailable(
                    f"the sign-up certificates could not be read from {self.url}"
                )
            elif key is None:
                log.info("signup.certs_refresh_rate_limited", kid=kid)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        """Read the document; on failure keep the keys held (stale beats none) and raise if none."""
        self._last_attempt = now
        self.fetches += 1
        try:
            response = self._get()
            response.raise_for_status()
            keys = _keys_from_document(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("signup.certs_fetch_failed", url=self.url, error=str(exc))
            if not self._keys:
                raise CertificatesUnavailable(
                    f"the sign-up certificates could not be read from {self.url}"
                ) from exc
            return
        self._keys = keys
        self._expires = now + _max_age(response.headers.get("cache-control"))
        log.info("signup.certs_refreshed", url=self.url, kids=sorted(keys))

    def _get(self) -> httpx.Response:
        if self.client is not None:
            return self.client.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)
        return httpx.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class SignupTokenVerifier:
    """Checks a sign-up token and returns its claims, or raises `InvalidSignupToken`."""

    certificates: CertificateCache
    audience: str
    issuer: str = CLOUD_COMMERCE_PARTNER_ISS
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS
    clock: Callable[[], float] = time.time

    @classmethod
    def for_url(cls, certs_url: str, audience: str, **kwargs: Any) -> SignupTokenVerifier:
        return cls(CertificateCache(certs_url), audience, **kwargs)

    def verify(self, token: str) -> SignupToken:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidSignupToken("malformed", "The sign-up token is empty or too long.")
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise InvalidSignupToken("malformed", "The sign-up token is not a signed JWT.")
        try:
            header = _json_object(parts[0])
            payload = _json_object(parts[1])
            signature = _b64decode(parts[2])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidSignupToken("malformed", "The sign-up token could not be read.") from None
        if header.get("alg") != "RS256":
            raise InvalidSignupToken("bad_algorithm", "The sign-up token is not signed by Google.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidSignupToken("missing_kid", "The sign-up token names no signing key.")
        key = self.certificates.verifier(kid)
        if key is None:
            raise InvalidSignupToken("unknown_kid", "The sign-up token's signing key is unknown.")
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not signature or not key.verify(signed, signature):
            raise InvalidSignupToken("bad_signature", "The sign-up token's signature is invalid.")
        return self._claims(payload, kid)

    def _claims(self, payload: dict[str, Any], kid: str) -> SignupToken:
        if payload.get("iss") != self.issuer:
            raise InvalidSignupToken("wrong_issuer", "The sign-up token was not issued by Google.")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise InvalidSignupToken("wrong_audience", "The sign-up token is for another product.")
        iat, exp = _number(payload.get("iat")), _number(payload.get("exp"))
        if iat is None or exp is None:
            raise InvalidSignupToken("malformed", "The sign-up token has no validity period.")
        now = self.clock()
        if now < iat - self.clock_skew_seconds:
            raise InvalidSignupToken("not_yet_valid", "The sign-up token is not valid yet.")
        if now > exp + self.clock_skew_seconds:
            raise InvalidSignupToken("expired", "The sign-up token has expired.")
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidSignupToken("missing_subject", "The sign-up token names no account.")
        google = payload.get("google")
        google = google if isinstance(google, dict) else {}
        identity = google.get("user_identity")
        roles = google.get("roles")
        return SignupToken(
            account_id=subject.strip(),
            audience=self.audience,
            issued_at=_utc(iat),
            expires_at=_utc(exp),
            user_identity=str(identity) if identity not in (None, "") else None,
            roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
            orders=parse_orders(payload),
            key_id=kid,
        )


def _number(value: object) -> float | None:
    """A finite, plausible NumericDate (JSON decoders accept NaN and Infinity; refuse them)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if math.isfinite(value) and 0 <= value < 1e11 else None
