"""Signed, short-lived browser sessions and CSRF tokens (used by the sign-up page and the console).

A session is a small JSON dict signed with `SESSION_SECRET` by itsdangerous, with a timestamp:
`SessionCodec.loads` refuses a cookie that was altered, signed for another purpose (`salt`), or
is older than `max_age`. Nothing secret goes in a session; it is signed, not encrypted.

CSRF: each session carries a random `csrf` token, put in the form as a hidden field;
`csrf_matches` compares the two in constant time. A cross-site page can neither read the cookie
nor the token, so it cannot forge the form.

Cookies are HttpOnly and SameSite=Lax (sent on top-level navigation, not on cross-site
subrequests or cross-site POSTs), and Secure outside the sandbox.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.responses import Response

CSRF_FIELD = "csrf_token"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: object, given: object) -> bool:
    """True when both tokens are non-empty strings and equal (compared in constant time)."""
    if not isinstance(expected, str) or not isinstance(given, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class SessionCodec:
    """Signs and reads one kind of session; `salt` keeps kinds apart (sign-up, console...)."""

    secret: str
    salt: str
    max_age: int

    @property
    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=self.salt)

    def dumps(self, data: dict[str, Any]) -> str:
        return str(self._serializer.dumps(data))

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The session's data, or None when absent, tampered with, or expired."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except BadData:
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class CookieSettings:
    name: str
    path: str = "/"
    secure: bool = True
    max_age: int = 1800


def set_session_cookie(response: Response, cookie: CookieSettings, value: str) -> None:
    response.set_cookie(
        cookie.name,
        value,
        max_age=cookie.max_age,
        path=cookie.path,
        secure=cookie.secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, cookie: CookieSettings) -> None:
    response.delete_cookie(
        cookie.name, path=cookie.path, secure=cookie.secure, httponly=True, samesite="lax"
    )
