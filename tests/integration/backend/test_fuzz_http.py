"""Fuzzing every JSON and form endpoint of the backend over HTTP (hypothesis; issue 17).

Bodies mix deep nesting, huge and tiny numbers, invalid Unicode (lone surrogates, NUL, invalid
UTF-8) and oversized bodies with plausible shapes. For every input: no 5xx (the TestClient
re-raises a server error, so a crash fails the test with its traceback), every refusal carries a
reason, and a refused input writes nothing. The two exceptions are by design and checked as
such: a failed sign-in counts against the throttle, and a push whose `data` is not base64 is
kept as one `invalid` inbox row so that it stays visible.

Each test is bounded (`max_examples`, no deadline) so the suite stays fast; each runs on SQLite
and PostgreSQL (PostgreSQL refuses NUL and lone surrogates that SQLite would store).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace_emulator.server import Emulator
from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.web import guards
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.admin_support import OPERATOR, operators_setting, sign_in
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.signup_support import (
    FORM,
    csrf_of,
    emulator_token,
    row_counts,
    signup_container,
)

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
USAGE_TOKEN = "fuzz-token"
DEEP = "[" * 100_000
RAW_TOKENS = [
    "1e999999999",
    "-1e999999999",
    "1e-999999999",
    "9" * 5000,
    "0.0000000001",
    "1E400",
    "-0",
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"1_000"',
    '"\\u0663"',
    '"0001-01-01T00:00:00+14:00"',
    '"9999-12-31T23:59:59-14:00"',
    "[" * 900 + "]" * 900,
    '{"a":' * 500 + "1" + "}" * 500,
]
ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates included
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(ANY_CHAR, max_size=20),
).map(lambda value: json.dumps(value, ensure_ascii=True))
json_text = st.recursive(
    st.one_of(leaf, st.sampled_from(RAW_TOKENS)),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.dictionaries(st.text(ANY_CHAR, max_size=8), children, max_size=4).map(
            lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=8,
)
# Whole bodies: JSON text, truncated or deep JSON, raw bytes (invalid UTF-8 included).
junk_body = st.one_of(
    json_text.map(str.encode),
    st.just(DEEP.encode()),
    st.binary(max_size=200),
)


def _plausible(field_values: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """A JSON object whose fields are each plausible or junk (raw JSON text)."""
    return st.fixed_dictionaries(
        {name: st.one_of(strategy, json_text) for name, strategy in field_values.items()}
    ).map(lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items() if v) + "}")


def _refused_with_reason(answer: Any) -> None:
    assert answer.status_code < 500, answer.text[:500]
    if answer.status_code >= 400:
        if answer.headers.get("content-type", "").startswith("application/json"):
            document = answer.json()
            reason = document.get("error") or document.get("detail") or document.get("message")
            assert reason, document
        else:
            assert answer.text.strip()


@pytest.fixture
def fuzz_container(make_container: ContainerFactory, emulator_url: str) -> Container:
    return signup_container(
        make_container,
        emulator_url,
        admin_operators=operators_setting(),
        usage_api_tokens=USAGE_TOKEN,
    )


@pytest.fixture
def http(fuzz_container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(fuzz_container), follow_redirects=False) as client:
        yield client


@pytest.fixture
def operator_http(fuzz_container: Container) -> Iterator[TestClient]:
    """Signed in as an operator through the form (a session: no password hash per request)."""
    with TestClient(create_app(fuzz_container), follow_redirects=False) as client:
        sign_in(client, OPERATOR)
        yield client


# -- the push endpoint ----------------------------------------------------------------------------

push_body = st.one_of(
    junk_body,
    _plausible(
        {
            "message": _plausible(
                {
                    "data": json_text.map(
                        lambda text: json.dumps(base64.b64encode(text.encode()).decode())
                    ),
                    "messageId": st.text(ANY_CHAR, max_size=10).map(
                        lambda t: json.dumps(t, ensure_ascii=True)
                    ),
                }
            ),
            "subscription": st.just('"projects/p/subscriptions/s"'),
        }
    ).map(str.encode),
    st.just(b" " * (guards.PUSH_BODY_LIMIT + 1)),
)


@FUZZ
@given(body=push_body)
def test_fuzzed_push_envelopes_never_crash_and_refusals_write_nothing(
    http: TestClient, fuzz_container: Container, body: bytes
) -> None:
    before = row_counts(fuzz_container)
    answer = http.post("/pubsub/push", content=body)
    _refused_with_reason(answer)
    after = row_counts(fuzz_container)
    if answer.status_code >= 400:
        stored = after["inbox"] - before["inbox"]
        kept_invalid = answer.status_code == 400 and "base64" in answer.json()["error"]
        assert stored == (1 if kept_invalid and stored else 0)
        assert {k: v for k, v in after.items() if k != "inbox"} == {
            k: v for k, v in before.items() if k != "inbox"
        }


# -- the usage API --------------------------------------------------------------------------------

record_text = _plausible(
    {
        "id": st.text("abcdef", min_size=1, max_size=6).map(json.dumps),
        "entitlement": st.just('"no-such-entitlement"'),
        "metric": st.just('"requests"'),
        "value": st.integers(0, 100).map(str),
        "time": st.just('"2025-01-31T12:00:00Z"'),
        "labels": st.just('{"env":"prod"}'),
    }
)
usage_body = st.one_of(
    junk_body,
    st.lists(record_text, max_size=5).map(
        lambda rs: ('{"records":[' + ",".join(rs) + "]}").encode()
    ),
    st.just(b'{"records":' + DEEP.encode() + b"}"),
)


@FUZZ
@given(body=usage_body)
def test_fuzzed_usage_batches_never_crash_and_store_only_what_they_accept(
    http: TestClient, fuzz_container: Container, body: bytes
) -> None:
    before = row_counts(fuzz_container)["usage_records"]
    answer = http.post(
        "/v1/usage",
        content=body,
        headers={"Authorization": f"Bearer {USAGE_TOKEN}", "Content-Type": "application/json"},
    )
    _refused_with_reason(answer)
    stored = row_counts(fuzz_container)["usage_records"] - before
    if answer.status_code == 200:
        result = answer.json()
        assert stored == result["accepted"]
        assert all(item["reason"] for item in result["rejected"])
    else:
        assert stored == 0


# -- forms: sign-up, customer login, console sign-in ----------------------------------------------

form_value = st.one_of(
    st.text(ANY_CHAR, max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=30),
    st.just(b"\x00"),
    st.just(b"x" * 3000),
)


def _form(fields: dict[str, bytes]) -> bytes:
    return b"&".join(
        quote_from_bytes(name.encode()).encode() + b"=" + quote_from_bytes(value).encode()
        for name, value in fields.items()
    )


FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@FUZZ
@given(token=form_value, path=st.sampled_from(["/signup", "/login"]))
def test_fuzzed_signup_and_login_tokens_never_crash_and_write_nothing(
    http: TestClient, fuzz_container: Container, token: bytes, path: str
) -> None:
    before = row_counts(fuzz_container)
    body = _form({"x-gcp-marketplace-token": token})
    answer = http.post(path, content=body, headers=FORM_HEADERS)
    _refused_with_reason(answer)
    assert answer.status_code >= 400
    assert row_counts(fuzz_container) == before


@FUZZ
@given(answers=st.fixed_dictionaries(dict.fromkeys(FORM, form_value)))
def test_fuzzed_signup_form_answers_never_crash_and_a_refusal_writes_nothing(
    emulator: Emulator, fuzz_container: Container, answers: dict[str, bytes]
) -> None:
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "pro")
    with TestClient(create_app(fuzz_container), follow_redirects=False) as http:
        started = http.post("/signup", data={"x-gcp-marketplace-token": emulator_token(account.id)})
        assert started.status_code == 200, started.text
        before = row_counts(fuzz_container)
        fields = {**answers, "csrf_token": csrf_of(started.text).encode()}
        answer = http.post("/signup/complete", content=_form(fields), headers=FORM_HEADERS)
    _refused_with_reason(answer)
    if answer.status_code >= 400:
        assert row_counts(fuzz_container) == before


@FUZZ
@given(name=form_value, password=form_value, csrf=form_value)
def test_fuzzed_console_sign_in_never_crashes_and_only_counts_failures(
    http: TestClient, fuzz_container: Container, name: bytes, password: bytes, csrf: bytes
) -> None:
    before = row_counts(fuzz_container)
    fields = {"name": name, "password": password, "csrf_token": csrf, "next": b"/admin"}
    answer = http.post("/admin/login", content=_form(fields), headers=FORM_HEADERS)
    _refused_with_reason(answer)
    assert answer.status_code >= 400
    after = row_counts(fuzz_container)
    assert {k: v for k, v in after.items() if k != "sign_in_failures"} == {
        k: v for k, v in before.items() if k != "sign_in_failures"
    }


# -- the console's forms and JSON API, signed in --------------------------------------------------


api_body = st.one_of(
    junk_body,
    _plausible(
        {
            "version": st.text(ANY_CHAR, max_size=10).map(lambda t: json.dumps(t)),
            "reason": st.text(ANY_CHAR, max_size=40).map(lambda t: json.dumps(t)),
        }
    ).map(str.encode),
    st.just(b" " * (guards.DEFAULT_BODY_LIMIT + 1)),
)
api_path = st.sampled_from(
    [
        "/api/v1/entitlements/e-1/approve",
        "/api/v1/entitlements/e-1/reject",
        "/api/v1/accounts/a-1/reject",
        "/api/v1/notifications/n-1/replay",
        "/api/v1/usage-reports/op-1/retry",
    ]
)


@FUZZ
@given(path=api_path, body=api_body)
def test_fuzzed_console_api_bodies_never_crash(
    operator_http: TestClient, fuzz_container: Container, path: str, body: bytes
) -> None:
    before = row_counts(fuzz_container)
    answer = operator_http.post(path, content=body, headers={"Content-Type": "application/json"})
    _refused_with_reason(answer)
    if answer.status_code >= 400:
        after = row_counts(fuzz_container)
        assert {k: v for k, v in after.items() if k != "audit_log"} == {
            k: v for k, v in before.items() if k != "audit_log"
        }


query_value = st.one_of(
    st.text(ANY_CHAR, max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
    st.binary(max_size=20),
)
api_query = st.sampled_from(
    [
        ("/api/v1/accounts", "q"),
        ("/api/v1/accounts", "after"),
        ("/api/v1/entitlements", "state"),
        ("/api/v1/entitlements", "after"),
        ("/api/v1/notifications", "before"),
        ("/api/v1/notifications", "status"),
        ("/api/v1/usage-reports", "before"),
        ("/api/v1/entitlements/e-1/usage", "hours"),
        ("/api/v1/accounts", "limit"),
    ]
)


@FUZZ
@given(target=api_query, value=query_value)
def test_fuzzed_console_api_queries_never_crash(
    operator_http: TestClient, target: tuple[str, str], value: bytes
) -> None:
    path, name = target
    _refused_with_reason(operator_http.get(f"{path}?{name}={quote_from_bytes(value)}"))
    segment = quote_from_bytes(value, safe="") or "x"
    for template in ("/api/v1/accounts/{}", "/api/v1/notifications/{}", "/admin/accounts/{}"):
        _refused_with_reason(operator_http.get(template.format(segment)))


@settings(FUZZ, max_examples=20)  # each example buys and syncs an entitlement
@given(
    decision=st.sampled_from(["approve", "reject", "reject-plan-change", "junk"]),
    fields=st.fixed_dictionaries({"reason": form_value, "version": form_value, "back": form_value}),
)
def test_fuzzed_console_action_forms_never_crash(
    emulator: Emulator,
    fuzz_container: Container,
    operator_http: TestClient,
    decision: str,
    fields: dict[str, bytes],
) -> None:
    """Operator decisions on a real pending entitlement (waiting for sign-up), with junk reasons,
    versions and return paths: a page or a redirect with a message, never a 5xx."""
    from marketplace_saas.service.procurement.reconcile import sync_all

    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "pro")
    sync_all(fuzz_container)
    token = csrf_of(operator_http.get("/admin").text)
    body = _form({**fields, "csrf_token": token.encode()})
    answer = operator_http.post(
        f"/admin/entitlements/{entitlement.id}/{decision}", content=body, headers=FORM_HEADERS
    )
    _refused_with_reason(answer)
    if answer.status_code == 303:
        assert answer.headers["location"].startswith("/admin")
