"""The Procurement API and control API over ASGI: Google's error envelope, and never a 500; the hot
calls (`entitlements.get`, an entitlement's custom verbs), served without the router, answer byte
for byte as the router does, faults included."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from marketplace_emulator.events import RecordingSink
from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.middleware import HotRouteMiddleware
from marketplace_emulator.procurement.routes import (
    entitlement_action,
    get_entitlement,
    hot_endpoint,
)
from marketplace_emulator.server import Emulator, create_app

with warnings.catch_warnings():  # Starlette asks for httpx2, which the project does not install
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

P = "DEMO-http"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    em = Emulator(sink=RecordingSink())
    yield em
    em.close()


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> TestClient:
    return TestClient(create_app(emulator), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def routed(emulator: Emulator) -> TestClient:
    """The same app on the same emulator with every call going through the router."""
    app = create_app(emulator)
    hot_routes: Any = HotRouteMiddleware
    app.user_middleware = [m for m in app.user_middleware if m.cls is not hot_routes]
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def bought(client: TestClient) -> dict[str, Any]:
    response = client.post(
        f"/emulator/v1/providers/{P}/purchases",
        json={"product": "example-product", "plan": "basic"},
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: Any, code: int, status: str, fragment: str = "") -> None:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    assert fragment in error["message"]


def test_entitlement_path_and_custom_verb_are_routed(client: TestClient, bought: Any) -> None:
    """`.../entitlements/{id}` and `.../entitlements/{id}:verb` reach the right handlers."""
    name = bought["entitlement"]["name"]
    assert client.get(f"/v1/{name}").json()["name"] == name
    assert_error(client.post(f"/v1/{name}:approve", json={}), 400, "FAILED_PRECONDITION", "signup")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "Invalid JSON payload"),
        (b"[1, 2]", "Expected a JSON object"),
        (b'{"colour": "red"}', 'Unknown name "colour"'),
        (b'{"reason": 5}', "Invalid value at 'reason'"),
        (b"[" * 50_000, "Invalid JSON payload"),
    ],
)
def test_malformed_bodies_are_invalid_argument(
    client: TestClient, bought: Any, body: bytes, fragment: str
) -> None:
    name = bought["entitlement"]["name"]
    response = client.post(f"/v1/{name}:reject", content=body)
    assert_error(response, 400, "INVALID_ARGUMENT", fragment)


def test_snake_case_field_names_are_accepted(client: TestClient, bought: Any) -> None:
    """Google's JSON parser accepts proto field names as well as lowerCamelCase."""
    account = bought["account"]["name"]
    assert client.post(f"/v1/{account}:approve", json={"approval_name": "signup"}).json() == {}


@pytest.mark.parametrize(
    ("method", "suffix", "fragment"),
    [
        ("GET", "/entitlements?colour=red", 'Unknown name "colour"'),
        ("GET", "/entitlements?pageSize=ten", "Invalid value at 'page_size'"),
        ("GET", "/entitlements?pageToken=xyz", "Invalid page token"),
        ("GET", "/entitlements?filter=plan%3D", "expected a value"),
        ("GET", "/accounts?pageSize=-3", "must not be negative"),
        ("GET", "/accounts/x?view=EVERYTHING", "Invalid value at 'view'"),
        ("GET", "/accounts?alt=proto", "JSON only"),
        ("POST", "/entitlements/:approve", "empty entitlement id"),
    ],
)
def test_bad_queries_and_names_are_invalid_argument(
    client: TestClient, method: str, suffix: str, fragment: str
) -> None:
    response = client.request(method, f"/v1/providers/{P}{suffix}")
    assert_error(response, 400, "INVALID_ARGUMENT", fragment)


def test_patch_needs_an_update_mask_naming_only_message_to_user(
    client: TestClient, bought: Any
) -> None:
    name = bought["entitlement"]["name"]
    body = {"messageToUser": "hello"}
    assert_error(client.patch(f"/v1/{name}", json=body), 400, "INVALID_ARGUMENT", "required")
    response = client.patch(f"/v1/{name}?updateMask=messageToUser,plan", json=body)
    assert_error(response, 400, "INVALID_ARGUMENT", "plan")
    patched = client.patch(f"/v1/{name}?updateMask=messageToUser", json={**body, "plan": "x"})
    assert patched.json()["messageToUser"] == "hello"
    assert patched.json()["plan"] == "basic"  # output-only fields in the body are ignored


def test_plan_change_calls_need_a_pending_plan_name(client: TestClient, bought: Any) -> None:
    name = bought["entitlement"]["name"]
    response = client.post(f"/v1/{name}:approvePlanChange", json={})
    assert_error(response, 400, "INVALID_ARGUMENT", "pendingPlanName is required")


def test_missing_resources_unknown_verbs_and_routes_are_not_found(client: TestClient) -> None:
    assert_error(client.get(f"/v1/providers/{P}/entitlements/ghost"), 404, "NOT_FOUND", "ghost")
    assert_error(client.get(f"/v1/providers/{P}/accounts/ghost"), 404, "NOT_FOUND", "ghost")
    response = client.post(f"/v1/providers/{P}/entitlements/ghost:explode", json={})
    assert_error(response, 404, "NOT_FOUND", ":explode")
    assert_error(client.get("/v2/anything"), 404, "NOT_FOUND")
    assert_error(client.delete(f"/v1/providers/{P}/entitlements/x"), 404, "NOT_FOUND", "DELETE")


def test_suspend_answers_unimplemented(client: TestClient, bought: Any) -> None:
    """[unconfirmed] Google documents suspend as "not yet supported"; the emulator answers 501."""
    name = bought["entitlement"]["name"]
    response = client.post(f"/v1/{name}:suspend", json={"reason": "x"})
    assert_error(response, 501, "UNIMPLEMENTED", "not yet supported")


def test_an_empty_list_omits_the_repeated_field_like_proto3_json(client: TestClient) -> None:
    assert client.get("/v1/providers/NOBODY/entitlements").json() == {}
    assert client.get("/v1/providers/NOBODY/accounts").json() == {}


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("purchases", {"product": "example-product"}, "plan: give a plan, or an offerId"),
        ("purchases", {"product": "nope", "plan": "basic"}, "Unknown product"),
        ("purchases", {"product": "example-product", "plan": "basic", "x": 1}, "x: Extra"),
        (
            "purchases",
            {"product": "example-product", "plan": "basic", "offer": {"endTime": "yesterday"}},
            "offer.endTime",
        ),
        ("entitlements/ghost:changePlan", {}, "plan: give a plan, or an offerId"),
        ("entitlements/ghost:cancel", {"atTermEnd": "maybe"}, "atTermEnd"),
        ("products/p", {"serviceName": "s", "plans": {}}, "plans"),
    ],
)
def test_control_api_rejects_bad_bodies_naming_the_field(
    client: TestClient, path: str, body: Any, fragment: str
) -> None:
    method = "PUT" if path.startswith("products") else "POST"
    response = client.request(method, f"/emulator/v1/providers/{P}/{path}", json=body)
    assert_error(response, 400, "INVALID_ARGUMENT", fragment)


def test_the_clock_refuses_to_go_back_or_too_far(client: TestClient) -> None:
    for seconds in (-1, "soon", 1e300):
        response = client.post("/emulator/v1/clock:advance", json={"seconds": seconds})
        assert_error(response, 400, "INVALID_ARGUMENT", "seconds")


ROUTES = [
    ("GET", "/v1/providers/{p}/accounts"),
    ("GET", "/v1/providers/{p}/accounts/{id}"),
    ("POST", "/v1/providers/{p}/accounts/{id}:{verb}"),
    ("GET", "/v1/providers/{p}/entitlements"),
    ("GET", "/v1/providers/{p}/entitlements/{id}"),
    ("PATCH", "/v1/providers/{p}/entitlements/{id}"),
    ("POST", "/v1/providers/{p}/entitlements/{id}:{verb}"),
    ("POST", "/emulator/v1/providers/{p}/purchases"),
    ("POST", "/emulator/v1/providers/{p}/entitlements/{id}:{verb}"),
    ("POST", "/emulator/v1/providers/{p}/accounts/{id}:{verb}"),
    ("PUT", "/emulator/v1/providers/{p}/products/{id}"),
    ("GET", "/emulator/v1/providers/{p}/products"),
    ("POST", "/emulator/v1/clock:advance"),
    ("GET", "/emulator/v1/notifications"),
]
VERBS = [
    "approve",
    "reject",
    "reset",
    "approvePlanChange",
    "rejectPlanChange",
    "suspend",
    "changePlan",
    "cancel",
    "cancelPlanChange",
    "revertCancellation",
    "renew",
    "endOffer",
    "delete",
    "",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=8,
)
FIELDS = ["product", "plan", "account", "offer", "reason", "approvalName", "pendingPlanName"]
bodies = st.one_of(
    st.binary(max_size=64),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
)
queries = st.dictionaries(
    st.sampled_from(["pageSize", "pageToken", "filter", "updateMask", "view", "alt", "x"]),
    st.text(max_size=30),
    max_size=3,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(ROUTES),
    provider=st.sampled_from([P, "x"]) | st.text(min_size=1, max_size=12),
    rid=st.text(min_size=0, max_size=12),
    verb=st.sampled_from(VERBS) | st.text(max_size=8),
    query=queries,
    body=bodies,
)
def test_no_input_makes_any_route_answer_500(
    client: TestClient,
    route: tuple[str, str],
    provider: str,
    rid: str,
    verb: str,
    query: dict[str, str],
    body: bytes,
) -> None:
    """Junk paths, queries and bodies get a 2xx or a 4xx/501 in Google's envelope, never a 500."""
    method, template = route
    path = template.format(
        p=quote(provider, safe=""), id=quote(rid, safe=""), verb=quote(verb, safe="")
    )
    response = client.request(method, path, params=query, content=body)
    assert response.status_code < 500 or response.status_code == 501, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "status"}
        assert error["code"] == response.status_code


# -- the hot calls, served without the router ----------------------------------------------------


def scope(method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": b"", **extra}


def test_only_an_entitlements_get_or_custom_verb_is_hot() -> None:
    """GET and POST on `/v1/providers/{p}/entitlements/{segment}` match; nothing else does."""
    got = hot_endpoint(scope("GET", "/v1/providers/p/entitlements/e"))
    posted = hot_endpoint(scope("POST", "/v1/providers/p/entitlements/e:approve"))
    assert getattr(got, "func", None) is get_entitlement
    assert getattr(posted, "func", None) is entitlement_action
    for method, path, extra in [
        ("HEAD", "/v1/providers/p/entitlements/e", {}),
        ("PATCH", "/v1/providers/p/entitlements/e", {}),
        ("GET", "/v1/providers/p/entitlements", {}),
        ("GET", "/v1/providers/p/entitlements/", {}),
        ("GET", "/v1/providers//entitlements/e", {}),
        ("GET", "/v1/providers/p/entitlements/e/", {}),
        ("GET", "/v1/providers/p/accounts/a", {}),
        ("GET", "/v2/providers/p/entitlements/e", {}),
        ("GET", "/emulator/v1/providers/p/entitlements/e", {}),
        ("GET", "/v1/providers/p/entitlements/e", {"root_path": "/mounted"}),
    ]:
        assert hot_endpoint(scope(method, path, **extra)) is None, (method, path)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "?alt=json", None),
        ("GET", "?colour=red", None),
        ("GET", "?alt=proto", None),
        ("GET", "-unknown", None),
        ("POST", ":approve", b"{}"),
        ("POST", ":approve", b""),
        ("POST", ":approve?colour=red", b"{}"),
        ("POST", ":frobnicate", b"{}"),
        ("POST", ":reject", b"{not json"),
        ("POST", ":reject", b'{"reason": 5}'),
        ("POST", ":approvePlanChange", b"{}"),
        ("POST", ":approvePlanChange", b'{"pendingPlanName": "pro"}'),
        ("POST", ":suspend", b"{}"),
        ("POST", "-unknown:approve", b"{}"),
    ],
)
def test_hot_calls_answer_exactly_as_the_router_does(
    client: TestClient,
    routed: TestClient,
    bought: Any,
    method: str,
    suffix: str,
    body: bytes | None,
) -> None:
    """Same status, headers (but the date) and body, for answers and for refusals alike."""
    name = bought["entitlement"]["name"]
    answers = [c.request(method, f"/v1/{name}{suffix}", content=body) for c in (client, routed)]
    first, second = ((r.status_code, r.content, dict(r.headers)) for r in answers)
    for _, _, headers in (first, second):
        headers.pop("date", None)
    assert first == second


def test_an_empty_entitlement_id_before_a_verb_is_refused_on_the_hot_path(
    client: TestClient, routed: TestClient
) -> None:
    """`.../entitlements/:approve` is a 400 INVALID_ARGUMENT, as through the router."""
    path = f"/v1/providers/{P}/entitlements/:approve"
    answers = [c.post(path, content=b"{}") for c in (client, routed)]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].content == answers[1].content


def test_a_plan_change_approved_on_the_hot_path_is_applied_and_notified(
    client: TestClient, emulator: Emulator, bought: Any
) -> None:
    """`:approvePlanChange` changes the plan and publishes ENTITLEMENT_PLAN_CHANGED."""
    name = bought["entitlement"]["name"]
    account = client.get(f"/v1/{name}").json()["account"]
    assert client.post(f"/v1/{account}:approve", json={}).status_code == 200
    assert client.post(f"/v1/{name}:approve", json={}).status_code == 200
    assert client.get(f"/v1/{name}").json()["state"] == "ENTITLEMENT_ACTIVE"
    eid = name.rsplit("/", 1)[1]
    change = f"/emulator/v1/providers/{P}/entitlements/{eid}:changePlan"
    assert client.post(change, json={"plan": "pro"}).status_code == 200
    response = client.post(f"/v1/{name}:approvePlanChange", json={"pendingPlanName": "pro"})
    assert (response.status_code, response.json()) == (200, {})
    assert client.get(f"/v1/{name}").json()["plan"] == "pro"
    notified = emulator.notifications(P)
    events = [n["eventType"] for n in notified if n.get("entitlement", {}).get("id") == eid]
    assert events[-1] == "ENTITLEMENT_PLAN_CHANGED"


def test_injected_faults_still_apply_to_the_hot_calls(
    client: TestClient, emulator: Emulator, bought: Any
) -> None:
    """An injected error answers instead of the hot handler, and the call has no effect."""
    name = bought["entitlement"]["name"]
    faults = {"procurement": {"errorRate": 1.0, "statuses": [503]}}
    emulator.faults.configure(FaultSettings.model_validate(faults))
    try:
        got = client.get(f"/v1/{name}")
        posted = client.post(f"/v1/{name}:reject", json={"reason": "no"})
    finally:
        emulator.faults.clear()
    assert (got.status_code, got.json()["error"]["status"]) == (503, "UNAVAILABLE")
    assert (posted.status_code, posted.json()["error"]["status"]) == (503, "UNAVAILABLE")
    assert client.get(f"/v1/{name}").json()["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
