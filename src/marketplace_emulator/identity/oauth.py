"""Google's OAuth 2.0 side for service accounts: keys, the token endpoint, access tokens, and the
OIDC identity tokens Pub/Sub signs push requests with.

- `create_key()` makes a service account and a key file in Google's JSON format, whose
  `token_uri` is this emulator's token endpoint (`marketplace-emulator service-account-key`).
  A key may be limited to some scopes (an emulator device: Google grants the scopes a client
  asks for and checks IAM permissions instead; here a key without a scope stands for a service
  account that may not call the API). A key may also be linked to some providers only: its
  tokens get 403 PERMISSION_DENIED on any other provider's resources, as Google answers a
  service account that Producer Portal has not linked to that provider.
- `exchange()` is the JWT-bearer grant (RFC 7523) `google-auth` sends to the key's `token_uri`:
  an RS256 assertion signed with the key, `iss` the account's email, `aud` Google's token URL
  (google-auth always writes `https://oauth2.googleapis.com/token`) or this endpoint's, `scope`
  the scopes asked for. The answer is `{access_token, expires_in, token_type, scope}`; a refusal
  is 400 `{error, error_description}` as Google's token endpoint answers.
- `lookup()` finds an access token, while it is unexpired (wall-clock time: google-auth refreshes
  by the wall clock, not by the emulator's movable clock).
- `mint_id_token()` signs an OIDC token as Google signs Pub/Sub push requests: `iss`
  `https://accounts.google.com`, `aud`, `email`, `email_verified`, `sub`, `azp`, one hour long,
  verifiable with the certificates at `/oauth2/v1/certs` (PEM) and `/oauth2/v3/certs` (JWK).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from marketplace_emulator.identity.models import (
    SigningKey,
    encode_rs256,
    generate_signing_key,
    jwk_set,
)

TOKEN_PATH = "/token"  # noqa: S105 - a URL path, not a secret
KEYS_PATH = "/emulator/v1/serviceAccountKeys"
OIDC_X509_PATH = "/oauth2/v1/certs"
OIDC_JWK_PATH = "/oauth2/v3/certs"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URLS = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
        "https://accounts.google.com/o/oauth2/token",
    }
)
OIDC_ISSUER = "https://accounts.google.com"
ACCESS_TOKEN_SECONDS = 3600
ID_TOKEN_SECONDS = 3600
MAX_ASSERTION_SECONDS = 3600
CLOCK_SKEW_SECONDS = 300
DEFAULT_PROJECT = "emulator-project"
DEFAULT_ACCOUNT = "marketplace-backend"


class OAuthError(Exception):
    """A refused token request: `error` and `error_description` as Google's endpoint answers."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class ServiceAccountKey:
    email: str
    unique_id: str
    key_id: str
    public_key: rsa.RSAPublicKey
    allowed_scopes: frozenset[str] | None  # None: any scope
    providers: frozenset[str] | None  # the providers it is linked to; None: any


@dataclass(frozen=True)
class AccessToken:
    email: str
    scopes: frozenset[str]
    expires_at: float
    providers: frozenset[str] | None = None  # as its key's

    def may_act_for(self, provider: str) -> bool:
        return self.providers is None or provider in self.providers


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _unique_id(email: str) -> str:
    """A stable 21-digit number for an account, as Google's service-account unique ids are."""
    return str(int.from_bytes(hashlib.sha256(email.encode()).digest()[:9], "big")).zfill(21)[:21]


class OAuthServer:
    """Service-account keys and the tokens issued for them; thread-safe, kept across resets."""

    def __init__(
        self,
        *,
        access_token_seconds: int = ACCESS_TOKEN_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.access_token_seconds = access_token_seconds
        self._now = now
        self._lock = threading.Lock()
        self._keys: dict[str, ServiceAccountKey] = {}
        self._tokens: dict[str, AccessToken] = {}
        self._oidc_key: SigningKey | None = None
        self.exchanges = 0  # token requests granted (tests count refreshes)

    # -- keys -----------------------------------------------------------------------------------

    def create_key(
        self,
        token_uri: str,
        *,
        name: str = DEFAULT_ACCOUNT,
        project: str = DEFAULT_PROJECT,
        scopes: Iterable[str] | None = None,
        providers: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """A new key for `name@project.iam.gserviceaccount.com`, as Google's key file; limited
        to `scopes` and linked to `providers` when given (else any)."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"{name}@{project}.iam.gserviceaccount.com"
        key_id = secrets.token_hex(20)
        allowed = frozenset(scopes) if scopes is not None else None
        linked = frozenset(providers) if providers is not None else None
        account = ServiceAccountKey(
            email, _unique_id(email), key_id, private.public_key(), allowed, linked
        )
        with self._lock:
            self._keys[key_id] = account
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        base = token_uri.rsplit("/", 1)[0]
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": account.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": f"{base}{OIDC_X509_PATH}",
            "client_x509_cert_url": f"{base}/robot/v1/metadata/x509/{email}",
            "universe_domain": "googleapis.com",
        }

    # -- the token endpoint ---------------------------------------------------------------------

    def exchange(self, form: Mapping[str, str], token_url: str) -> dict[str, Any]:
        """Grant an access token for a JWT-bearer assertion, or raise `OAuthError`."""
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        account, claims = self._verify_assertion(assertion, token_url)
        requested = frozenset(str(claims.get("scope", "")).split())
        if not requested:
            raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        granted = (
            requested if account.allowed_scopes is None else requested & account.allowed_scopes
        )
        if not granted:
            raise OAuthError(
                "invalid_scope",
                f"{account.email} may not be granted any of the scopes asked for: "
                f"{' '.join(sorted(requested))}.",
            )
        token = "ya29.emulator-" + secrets.token_urlsafe(32)
        now = self._now()
        with self._lock:
            self._prune(now)
            self._tokens[token] = AccessToken(
                account.email, granted, now + self.access_token_seconds, account.providers
            )
            self.exchanges += 1
        return {
            "access_token": token,
            "expires_in": self.access_token_seconds,
            "token_type": "Bearer",
            "scope": " ".join(sorted(granted)),
        }

    def _verify_assertion(
        self, assertion: str, token_url: str
    ) -> tuple[ServiceAccountKey, dict[str, Any]]:
        try:
            head, body, signature = assertion.split(".")
            header = json.loads(_b64decode(head))
            claims = json.loads(_b64decode(body))
            raw_signature = _b64decode(signature)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_grant", "Invalid JWT: not a signed JWT.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise OAuthError("invalid_grant", "Invalid JWT: not a signed JWT.")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT: the algorithm must be RS256.")
        with self._lock:
            account = self._keys.get(str(header.get("kid", "")))
        if account is None:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            account.public_key.verify(
                raw_signature,
                f"{head}.{body}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("iss") != account.email:
            raise OAuthError("invalid_grant", "Invalid JWT: iss is not the key's account.")
        if claims.get("aud") not in GOOGLE_TOKEN_URLS | {token_url}:
            raise OAuthError("invalid_grant", "Invalid JWT: Failed audience check.")
        now = self._now()
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            raise OAuthError("invalid_grant", "Invalid JWT: iat and exp are required.")
        if issued > now + CLOCK_SKEW_SECONDS or expires < now - CLOCK_SKEW_SECONDS:
            raise OAuthError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
            )
        if expires - issued > MAX_ASSERTION_SECONDS:
            raise OAuthError("invalid_grant", "Invalid JWT: exp is more than an hour after iat.")
        return account, claims

    # -- access tokens --------------------------------------------------------------------------

    def lookup(self, token: str) -> AccessToken | None:
        """The unexpired access token, or None."""
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found.expires_at <= self._now():
            return None
        return found

    def _prune(self, now: float) -> None:
        if len(self._tokens) > 10_000:
            self._tokens = {t: a for t, a in self._tokens.items() if a.expires_at > now}

    # -- OIDC identity tokens (signed push) -----------------------------------------------------

    def oidc_key(self) -> SigningKey:
        with self._lock:
            if self._oidc_key is None:
                self._oidc_key = generate_signing_key("accounts.google.com")
            return self._oidc_key

    def oidc_certificates(self) -> dict[str, str]:
        key = self.oidc_key()
        return {key.kid: key.certificate_pem}

    def oidc_jwks(self) -> dict[str, Any]:
        return jwk_set(self.oidc_key())

    def mint_id_token(self, email: str, audience: str, *, lifetime: int = ID_TOKEN_SECONDS) -> str:
        """An OIDC token for `email`, as Pub/Sub puts in a push request's Authorization."""
        now = int(self._now())
        unique_id = _unique_id(email)
        claims = {
            "aud": audience,
            "azp": unique_id,
            "email": email,
            "email_verified": True,
            "exp": now + lifetime,
            "iat": now,
            "iss": OIDC_ISSUER,
            "sub": unique_id,
        }
        return encode_rs256(self.oidc_key(), claims)


class PushSigner:
    """The OIDC token for each push request, reused until five minutes before it expires."""

    def __init__(self, server: OAuthServer, email: str, audience: str) -> None:
        self._server = server
        self.email = email
        self.audience = audience
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = time.time()
            if now >= self._renew_at:
                self._token = self._server.mint_id_token(self.email, self.audience)
                self._renew_at = now + ID_TOKEN_SECONDS - 300
            return self._token
