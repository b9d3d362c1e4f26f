"""The sign-up JWT issuer: what Google sends as `x-gcp-marketplace-token`.

One RSA key (2048 bits) is generated lazily, once per process, and kept across resets: the key is
the emulator's identity, not state. Its self-signed X.509 certificate is served under `kid` at the
`iss` URL, and the same key as a JWK at the `jwk` variant of that URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from marketplace_emulator.clock import Clock

SERVICE_ACCOUNT = "cloud-commerce-partner@system.gserviceaccount.com"
X509_PATH = f"/robot/v1/metadata/x509/{SERVICE_ACCOUNT}"
JWK_PATH = f"/robot/v1/metadata/jwk/{SERVICE_ACCOUNT}"
ISSUER = f"https://www.googleapis.com{X509_PATH}"
DEFAULT_TTL_SECONDS = 300
# Google does not document the value set of `google.roles` (unconfirmed); this is a placeholder.
DEFAULT_ROLES = ("account_admin",)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str
    public_numbers: rsa.RSAPublicNumbers


_key_lock = threading.Lock()
_key: SigningKey | None = None


def signing_key() -> SigningKey:
    """The process's signing key, generated on first use."""
    global _key  # one key per process, shared by every issuer on purpose
    with _key_lock:
        if _key is None:
            _key = generate_signing_key()
        return _key


def generate_signing_key(common_name: str = SERVICE_ACCOUNT) -> SigningKey:
    """A new RSA key and its self-signed certificate; `kid` is the SHA-1 of the public key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    return SigningKey(
        kid=kid,
        private_key=private,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        public_numbers=public.public_numbers(),
    )


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def encode_rs256(key: SigningKey, payload: dict[str, Any]) -> str:
    """A compact JWS: header `{"alg": "RS256", "kid", "typ": "JWT"}`, PKCS#1 v1.5 over SHA-256."""
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def jwk_set(key: SigningKey) -> dict[str, Any]:
    """`{"keys": [the key as an RSA JWK]}`."""
    numbers = key.public_numbers
    jwk = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": key.kid}
    return {"keys": [{**jwk, "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}]}


def default_user_identity(account: str) -> str:
    """A stable, opaque numeric user id for an account (Google's is an obfuscated Google user)."""
    digest = hashlib.sha256(f"user:{account}".encode()).digest()
    return str(int.from_bytes(digest[:8], "big"))


class IdentityIssuer:
    """Mints sign-up JWTs signed with the process's key, timed by the emulator's clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    @property
    def kid(self) -> str:
        return signing_key().kid

    def x509_certificates(self) -> dict[str, str]:
        """`{kid: PEM certificate}`, the body of the `iss` URL."""
        key = signing_key()
        return {key.kid: key.certificate_pem}

    def jwks(self) -> dict[str, Any]:
        """The same key as a JWK Set."""
        return jwk_set(signing_key())

    def mint(
        self,
        account: str,
        audience: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        user_identity: str | None = None,
        roles: list[str] | None = None,
        orders: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed RS256 JWT: `iss`, `aud`, `sub` = account, `iat`, `exp`, and `google`."""
        key = signing_key()
        issued = int(self._clock.now().timestamp())
        google: dict[str, Any] = {
            "user_identity": user_identity or default_user_identity(account),
            "roles": list(DEFAULT_ROLES if roles is None else roles),
        }
        if orders is not None:
            google["orders"] = list(orders)
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": account,
            "iat": issued,
            "exp": issued + ttl_seconds,
            "google": google,
            **(extra or {}),
        }
        return encode_rs256(key, payload)
