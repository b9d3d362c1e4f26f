"""The transport both Google gateways share: per-thread connections, bounded retries, closing."""

from __future__ import annotations

import threading
from typing import Any

import httplib2
import pytest
from google.auth.credentials import AnonymousCredentials, Credentials
from googleapiclient.errors import HttpError

from marketplace_saas.adapters.google_api import GoogleApiTransport, api_endpoint


class Transient(Exception):
    pass


class Failure(Exception):
    pass


class FakeHttp:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Request:
    """A request whose `execute` raises or returns the next scripted outcome."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.https: list[Any] = []

    def execute(self, *, http: Any, num_retries: int) -> Any:
        assert num_retries == 0
        self.https.append(http)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _http_error(status: int) -> HttpError:
    return HttpError(httplib2.Response({"status": status}), b"{}")


def _classify(exc: HttpError) -> Exception:
    return Transient() if int(exc.resp.status) >= 500 else Failure()


def _no_default() -> Credentials:
    raise AssertionError("default credentials asked although credentials were given")


def transport(
    made: list[FakeHttp], sleeps: list[float], *, max_attempts: int = 3, **kwargs: Any
) -> GoogleApiTransport:
    def factory() -> FakeHttp:
        made.append(FakeHttp())
        return made[-1]

    return GoogleApiTransport(
        AnonymousCredentials(),  # type: ignore[no-untyped-call]
        default_credentials=_no_default,
        http_factory=factory,
        timeout=1.0,
        max_attempts=max_attempts,
        backoff_base=0.2,
        backoff_max=0.5,
        sleep=sleeps.append,
        **kwargs,
    )


def run(api: GoogleApiTransport, request: Request) -> Any:
    return api.execute(
        request, http_error=_classify, transport_error=lambda exc: Transient(), transient=Transient
    )


def test_transient_answers_are_retried_with_capped_full_jitter_backoff() -> None:
    made: list[FakeHttp] = []
    sleeps: list[float] = []
    api = transport(made, sleeps, max_attempts=4)
    request = Request([_http_error(503), _http_error(500), _http_error(502), {"ok": True}])
    assert run(api, request) == {"ok": True}
    assert len(sleeps) == 3
    assert all(0 <= s <= c for s, c in zip(sleeps, [0.2, 0.4, 0.5], strict=True))
    assert len(made) == 1  # one http for the thread, reused


def test_other_answers_are_raised_at_once_from_the_http_error() -> None:
    sleeps: list[float] = []
    request = Request([_http_error(400), {"ok": True}])
    with pytest.raises(Failure) as caught:
        run(transport([], sleeps), request)
    assert isinstance(caught.value.__cause__, HttpError)
    assert sleeps == []
    assert len(request.https) == 1


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    sleeps: list[float] = []
    request = Request([_http_error(503)] * 5)
    with pytest.raises(Transient):
        run(transport([], sleeps, max_attempts=3), request)
    assert len(request.https) == 3
    assert len(sleeps) == 2


def test_a_connection_error_replaces_and_closes_this_threads_http() -> None:
    made: list[FakeHttp] = []
    request = Request([ConnectionResetError("reset"), TimeoutError("slow"), {"ok": True}])
    assert run(transport(made, []), request) == {"ok": True}
    assert len(made) == 3
    assert [h.closed for h in made] == [True, True, False]
    assert request.https == made


def test_at_least_one_attempt_is_required_before_credentials_are_looked_up() -> None:
    asked: list[bool] = []

    def default() -> Credentials:
        asked.append(True)
        return AnonymousCredentials()  # type: ignore[no-untyped-call]

    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        GoogleApiTransport(
            None,
            default_credentials=default,
            http_factory=None,
            timeout=1.0,
            max_attempts=0,
            backoff_base=0.2,
            backoff_max=4.0,
        )
    assert asked == []


def _http_in_thread(api: GoogleApiTransport) -> None:
    thread = threading.Thread(target=api.http)
    thread.start()
    thread.join()


@pytest.mark.parametrize("close_finished_threads", [False, True])
def test_close_closes_every_threads_http_and_finished_threads_are_closed_only_on_request(
    close_finished_threads: bool,
) -> None:
    made: list[FakeHttp] = []
    api = transport(made, [], close_finished_threads=close_finished_threads)
    _http_in_thread(api)
    api.http()  # this (live) thread opens one after the other thread ended
    assert made[0].closed is close_finished_threads
    assert made[1].closed is False
    api.close()
    assert all(h.closed for h in made)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://emulator:8080", "http://emulator:8080/"), ("http://e/", "http://e/")],
)
def test_the_endpoint_gets_exactly_one_trailing_slash(url: str, expected: str) -> None:
    assert api_endpoint(url) == expected
