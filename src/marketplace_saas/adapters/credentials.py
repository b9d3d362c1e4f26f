"""Google credentials for the backend's API calls, loaded once and scoped per API.

    GoogleCredentials(settings)             built once, in bootstrap(); loads nothing until used
      .scoped(PROCUREMENT_SCOPES)           the credentials a gateway signs its calls with
      .describe()                           "service account X (key file F)", for `doctor`

Where they come from:
- `GOOGLE_APPLICATION_CREDENTIALS` set: that file (a service-account key, or any file google-auth
  reads), whatever the endpoints, the emulator's included (its key's `token_uri` is the emulator's
  token endpoint);
- otherwise, in the sandbox: anonymous (no `Authorization` header);
- otherwise: Application Default Credentials (workload identity, the metadata server, gcloud).

Each API gets its own scoped copy, so each access token carries the scopes that API's methods
name in Google's discovery documents. google-auth refreshes a token before it expires (a few
minutes ahead), under the transport's request; tokens never reach our logs.

    CredentialsError   the credentials cannot be loaded, or the token endpoint refused them;
                       the message names the source and the scopes, never a token
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import google.auth
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials, with_scopes_if_required

from marketplace_saas.config import Settings

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SERVICECONTROL = "https://www.googleapis.com/auth/servicecontrol"
# The scopes Google's discovery documents name for the methods we call (any one suffices).
PROCUREMENT_SCOPES = (CLOUD_PLATFORM,)
SERVICECONTROL_SCOPES = (SERVICECONTROL,)


class CredentialsError(Exception):
    """The credentials could not be loaded or could not get an access token."""


Loader = Callable[[Settings], Credentials | None]


def load_credentials(settings: Settings) -> Credentials | None:
    """The unscoped credentials the settings point at; None means anonymous (sandbox only)."""
    path = settings.google_application_credentials
    try:
        if path is not None:
            loaded = google.auth.load_credentials_from_file(str(path))  # type: ignore[no-untyped-call]
            return loaded[0]  # type: ignore[no-any-return]
        if settings.sandbox:
            return None
        credentials, _project = google.auth.default()
        return credentials
    except auth_exceptions.DefaultCredentialsError as exc:
        source = f"GOOGLE_APPLICATION_CREDENTIALS={path}" if path else "Application Default"
        raise CredentialsError(
            f"cannot load Google credentials ({source}): {exc}. Set GOOGLE_APPLICATION_CREDENTIALS "
            "to a service-account key file, or run where Application Default Credentials exist "
            "(workload identity, `gcloud auth application-default login`)"
        ) from None


class GoogleCredentials:
    """The backend's credentials, loaded on first use, one scoped copy per set of scopes."""

    def __init__(self, settings: Settings, *, loader: Loader = load_credentials) -> None:
        self._settings = settings
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded = False
        self._base: Credentials | None = None
        self._scoped: dict[tuple[str, ...], Credentials] = {}

    def _load(self) -> Credentials | None:
        with self._lock:
            if not self._loaded:
                self._base = self._loader(self._settings)
                self._loaded = True
            return self._base

    @property
    def anonymous(self) -> bool:
        return self._load() is None

    def scoped(self, scopes: Sequence[str]) -> Credentials:
        """The credentials for an API whose methods need one of `scopes` (the same object on
        every call, so every gateway of that API shares one token)."""
        base = self._load()
        if base is None:
            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        key = tuple(scopes)
        with self._lock:
            if key not in self._scoped:
                self._scoped[key] = with_scopes_if_required(base, key)  # type: ignore[no-untyped-call]
            return self._scoped[key]

    def describe(self) -> str:
        """Where the credentials come from, for people (no secret in it)."""
        base = self._load()
        if base is None:
            return "anonymous (sandbox)"
        email = getattr(base, "service_account_email", None)
        who = f"service account {email}" if email else type(base).__name__
        path = self._settings.google_application_credentials
        return f"{who} ({f'key file {path}' if path else 'Application Default Credentials'})"


def refresh_error(exc: auth_exceptions.RefreshError, scopes: Sequence[str] | None) -> Exception:
    """What a refused token request becomes: a `CredentialsError` naming the scopes."""
    asked = f" for {' '.join(scopes)}" if scopes else ""
    return CredentialsError(f"Google refused an access token{asked}: {_first(exc.args)}")


def _first(args: tuple[Any, ...]) -> str:
    return str(args[0]) if args else "no reason given"


def scopes_of(credentials: Credentials) -> tuple[str, ...] | None:
    scopes = getattr(credentials, "scopes", None) or getattr(credentials, "_scopes", None)
    return tuple(scopes) if scopes else None
