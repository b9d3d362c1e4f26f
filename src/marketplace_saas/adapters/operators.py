"""Console operators, from configuration: names, roles and salted password hashes.

    ADMIN_OPERATORS=alice:operator:scrypt.16384.8.1.<salt>.<hash>,bob:viewer:scrypt....

Roles: `viewer` (reads everything) and `operator` (also approves, rejects, replays, retries).
Hashes are scrypt (standard library) with a random 16-byte salt, written by
`marketplace-saas admin hash-password`; plain-text passwords are never accepted. The hash text
holds no `:` or `,` so that it fits in the variable.

In the sandbox, with no operators configured, there is one operator `admin` whose random password
is made once per process (`sandbox_password()`), or kept with the sandbox's state: `serve` sets it
with `use_sandbox_password()` and prints it at start.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from marketplace_saas.config import Settings

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
SANDBOX_OPERATOR = "admin"
SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_PASSWORD = 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class OperatorConfigError(ValueError):
    """ADMIN_OPERATORS cannot be read; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role

    @property
    def can_act(self) -> bool:
        """Operators approve, reject, replay and retry; viewers only read."""
        return self.role == "operator"

    @property
    def actor(self) -> str:
        """The actor recorded in the audit log for this operator's actions."""
        return f"operator:{self.name}"


@dataclass(frozen=True)
class _Entry:
    operator: Operator
    password_hash: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=256 * 1024 * 1024
    )


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password` (a random salt unless given), in the text form
    ADMIN_OPERATORS takes."""
    if not password:
        raise ValueError("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password is longer than {MAX_PASSWORD} characters")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    return f"{SCHEME}.{N}.{R}.{P}.{_b64(salt)}.{_b64(key)}"


def _parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    parts = text.split(".")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("not a scrypt hash from `marketplace-saas admin hash-password`")
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise ValueError("a malformed scrypt hash") from exc
    if n < 2**10 or n > 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError("scrypt parameters out of range")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("the salt or key of the hash is too short")
    return n, r, p, salt, key


def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches; a malformed hash or an over-long password never matches."""
    if not password or len(password) > MAX_PASSWORD:
        return False
    try:
        n, r, p, salt, key = _parse_hash(password_hash)
    except ValueError:
        return False
    return hmac.compare_digest(_derive(password, salt, n, r, p), key)


_sandbox_password: list[str] = []


def use_sandbox_password(password: str) -> None:
    """The sandbox operator's password from now on (the one kept with the sandbox's state)."""
    _sandbox_password[:] = [password]
    _sandbox_hash.cache_clear()


def sandbox_password() -> str:
    """The sandbox operator's password: the one set by `use_sandbox_password`, else random,
    made once per process."""
    if not _sandbox_password:
        _sandbox_password.append(secrets.token_urlsafe(12))
    return _sandbox_password[0]


@functools.cache
def _sandbox_hash() -> str:
    # The salt follows from the (random, kept) password, so that a restart of the sandbox makes
    # the same hash: sessions carry its fingerprint and stay valid across the restart.
    password = sandbox_password()
    salt = hashlib.sha256(b"marketplace-saas sandbox salt:" + password.encode()).digest()
    return hash_password(password, salt=salt[:SALT_BYTES])


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def parse_operators(text: str) -> dict[str, _Entry]:
    """`name:role:hash,...` -> entries by name; a clear error for the first bad entry."""
    entries: dict[str, _Entry] = {}
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise OperatorConfigError(
                f"ADMIN_OPERATORS entry {position}: expected name:role:hash "
                f"(got {len(parts)} field(s))"
            )
        name, role, password_hash = (part.strip() for part in parts)
        if not NAME.match(name):
            raise OperatorConfigError(
                f"ADMIN_OPERATORS entry {position}: bad operator name {name!r} "
                "(letters, digits, . _ @ -; at most 64)"
            )
        if role not in ROLES:
            raise OperatorConfigError(
                f"ADMIN_OPERATORS entry {position} ({name}): role must be viewer or operator"
            )
        try:
            _parse_hash(password_hash)
        except ValueError as exc:
            raise OperatorConfigError(
                f"ADMIN_OPERATORS entry {position} ({name}): {exc} "
                "(plain-text passwords are not accepted)"
            ) from exc
        if name in entries:
            raise OperatorConfigError(f"ADMIN_OPERATORS: operator {name!r} is listed twice")
        entries[name] = _Entry(Operator(name, role), password_hash)
    return entries


class OperatorDirectory:
    """Who may sign in to the console, and with which role."""

    def __init__(self, entries: dict[str, _Entry], *, sandbox_default: bool = False) -> None:
        self._entries = entries
        self.sandbox_default = sandbox_default

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorDirectory:
        entries = parse_operators(settings.admin_operators.get_secret_value())
        if not entries and settings.sandbox:
            operator = Operator(SANDBOX_OPERATOR, "operator")
            return cls({SANDBOX_OPERATOR: _Entry(operator, _sandbox_hash())}, sandbox_default=True)
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Operator | None:
        entry = self._entries.get(name)
        return entry.operator if entry else None

    def fingerprint(self, name: str) -> str:
        """A digest of `name`'s configured password hash ('' when unknown): sessions carry it, so
        a new password (a new hash) ends the sessions opened with the old one."""
        entry = self._entries.get(name)
        if entry is None:
            return ""
        return hashlib.sha256(entry.password_hash.encode()).hexdigest()[:32]

    def authenticate(self, name: str, password: str) -> Operator | None:
        """The operator when name and password match; as slow for an unknown name as a known."""
        entry = self._entries.get(name)
        if entry is None:
            verify_password(password, _dummy_hash())
            return None
        return entry.operator if verify_password(password, entry.password_hash) else None
