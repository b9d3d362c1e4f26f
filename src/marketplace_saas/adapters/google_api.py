"""What the gateways to Google's discovery-based APIs share: connections, retries, closing.

`GoogleApiTransport` builds a service from the discovery document bundled with
`google-api-python-client` (no network at build time), optionally pointed at another endpoint
(the emulator), and runs its requests:

- each thread has its own `AuthorizedHttp(httplib2.Http(timeout))` (httplib2 objects are not
  thread-safe), made by an injectable `http_factory`; `close()` closes every one it made;
- a request is tried at most `max_attempts` times, with full-jitter exponential backoff
  (a random delay up to `backoff_base * 2**n`, capped at `backoff_max`, through an injectable
  `sleep`) between tries, on the errors the gateway's own classifier calls transient, and on
  timeouts and connection errors (after which this thread's http is replaced).

A refused token request (google-auth's `RefreshError`) becomes `credentials.CredentialsError`,
naming the scopes asked for; one Google marks retryable is retried like a connection error.

Which answers are transient, and which exception each becomes, is not decided here: each gateway
passes its API's classifier (`procurement_errors`, `servicecontrol`).
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import RefreshError
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from marketplace_saas.adapters.credentials import refresh_error, scopes_of

# Exceptions httplib2 lets through for timeouts, refused or reset connections and DNS failures.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # TimeoutError, ConnectionError, ssl errors
    httplib2.HttpLib2Error,
    http.client.HTTPException,
)


def close_http(http: Any) -> None:
    """Close an http's sockets, whether an `AuthorizedHttp` or a bare `httplib2.Http`."""
    inner = getattr(http, "http", http)  # AuthorizedHttp wraps an httplib2.Http
    close = getattr(inner, "close", None)
    if callable(close):
        close()


def api_endpoint(url: str) -> str:
    """The endpoint as the discovery client wants it: with a trailing slash."""
    return url if url.endswith("/") else url + "/"


class GoogleApiTransport:
    """Per-thread connections and bounded retries for one API, safe to share between threads."""

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        default_credentials: Callable[[], Credentials],
        http_factory: Callable[[], Any] | None,
        timeout: float,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        sleep: Callable[[float], None] = time.sleep,
        close_finished_threads: bool = False,
    ) -> None:
        """`default_credentials()` is asked only when no `credentials` are given;
        `close_finished_threads`: when a thread opens its http, close those of ended threads."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._credentials = credentials if credentials is not None else default_credentials()
        self._timeout = timeout
        self._http_factory = http_factory or self._authorized_http
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._close_finished_threads = close_finished_threads
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[tuple[threading.Thread, Any]] = []  # closed by close()
        # Services built here only build requests; each request runs on its thread's http.
        self._build_http = httplib2.Http(timeout=timeout)

    def build_service(self, name: str, version: str, endpoint: str | None) -> Any:
        """The discovery client of `name` `version`, at `endpoint` when given."""
        options: dict[str, str] = {}
        if endpoint:
            options["api_endpoint"] = api_endpoint(endpoint)
        return build(
            name,
            version,
            http=self._build_http,
            static_discovery=True,
            client_options=options or None,
            cache_discovery=False,
        )

    # -- connections ----------------------------------------------------------------------------

    def _authorized_http(self) -> Any:
        # On a 401, google-auth refreshes the token and tries once more; anonymous credentials
        # have nothing to refresh, so their 401 is the answer.
        anonymous = isinstance(self._credentials, AnonymousCredentials)
        return google_auth_httplib2.AuthorizedHttp(
            self._credentials,
            http=httplib2.Http(timeout=self._timeout),
            refresh_status_codes=() if anonymous else (401,),
        )

    def http(self) -> Any:
        """This thread's http, made on first use."""
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._http_factory()
            self._local.http = http
            dead: list[tuple[threading.Thread, Any]] = []
            with self._lock:
                if self._close_finished_threads:
                    # Close the connections of threads that have ended (a finished worker pool).
                    dead = [(t, h) for t, h in self._opened if not t.is_alive()]
                    self._opened = [(t, h) for t, h in self._opened if t.is_alive()]
                self._opened.append((threading.current_thread(), http))
            for _thread, old in dead:
                close_http(old)
        return http

    def drop_http(self) -> None:
        """Forget this thread's http (after a broken connection) and close its sockets."""
        http = getattr(self._local, "http", None)
        self._local.http = None
        if http is not None:
            with self._lock:
                self._opened = [(t, h) for t, h in self._opened if h is not http]
            close_http(http)

    def close(self) -> None:
        """Close every connection opened for this API, in any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
        for _thread, connection in opened:
            close_http(connection)
        close_http(self._build_http)

    # -- retries --------------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random delay up to base * 2**attempt, capped."""
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        return random.uniform(0, ceiling)

    def execute(
        self,
        request: Any,
        *,
        http_error: Callable[[HttpError], Exception],
        transport_error: Callable[[BaseException], Exception],
        transient: type[Exception],
    ) -> Any:
        """Run `request`, retried; raise what the gateway's classifier makes of the last failure.

        An error answer becomes `http_error(exc)`, raised at once unless it is a `transient`;
        a timeout or connection error becomes `transport_error(exc)` and is always retried.
        """
        last: Exception | None = None
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self.backoff(attempt - 1))
            try:
                return request.execute(http=self.http(), num_retries=0)
            except HttpError as exc:
                error = http_error(exc)
                if not isinstance(error, transient):
                    raise error from exc
                last = error
            except RefreshError as exc:
                if not exc.retryable:
                    raise refresh_error(exc, scopes_of(self._credentials)) from None
                last = transport_error(exc)
            except TRANSPORT_ERRORS as exc:
                # A broken connection may leave this thread's http unusable: start afresh.
                self.drop_http()
                last = transport_error(exc)
        assert last is not None
        raise last
