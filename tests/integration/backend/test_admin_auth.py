"""Console sign-in, sessions, CSRF and roles, over every route of the app."""

from __future__ import annotations

import base64
import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from marketplace_saas.entrypoints.web.admin.common import require_operator
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.admin_support import (
    OPERATOR,
    PASSWORD,
    VIEWER,
    admin_container,
    console,
    csrf_from,
)
from tests.integration.backend.conftest import ContainerFactory

pytestmark = pytest.mark.integration

PUBLIC = {("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin/static/{name}")}
ACTION_PREFIXES = ("/admin", "/api/v1")


def _needs_operator(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if dependency.call is require_operator:
            return True
        stack.extend(dependency.dependencies)
    return False


def _console_routes(client: TestClient) -> list[tuple[str, str, APIRoute]]:
    """Every (method, full path, route) of the app under /admin and /api/v1."""
    routes: list[tuple[str, str, APIRoute]] = []
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route, path = context.original_route, context.path or ""
        if isinstance(route, APIRoute) and path.startswith(ACTION_PREFIXES):
            routes.extend((method, path, route) for method in sorted(context.methods or ()))
    return routes


def _call(client: TestClient, method: str, path: str) -> int:
    url = re.sub(r"\{[^}]+\}", "x", path)
    if method == "POST":
        return int(client.post(url, json={}, follow_redirects=False).status_code)
    return int(client.request(method, url, follow_redirects=False).status_code)


def test_every_console_and_api_route_refuses_anonymous_and_viewers_where_operators_act(
    make_container: ContainerFactory,
) -> None:
    """Pages redirect to sign-in, the API answers 401; a viewer gets 403 on every action."""
    container = admin_container(make_container)
    routes = []
    with console(container) as anonymous:
        routes = _console_routes(anonymous)
        assert len(routes) > 25
        for method, path, _ in routes:
            if (method, path) in PUBLIC:
                continue
            status = _call(anonymous, method, path)
            expected = 401 if path.startswith("/api/") else 303
            assert status == expected, f"anonymous {method} {path}: {status}"
    with console(container, VIEWER) as viewer:
        for method, path, route in routes:
            if method == "POST" and (method, path) not in PUBLIC and path != "/admin/logout":
                assert _needs_operator(route), f"{method} {path} does not require an operator"
            if _needs_operator(route):
                if path.startswith("/api/"):
                    assert _call(viewer, method, path) == 403, f"viewer {method} {path}"
                else:
                    token = csrf_from(viewer.get("/admin").text)
                    url = re.sub(r"\{[^}]+\}", "x", path)
                    status = viewer.post(
                        url, data={"csrf_token": token}, follow_redirects=False
                    ).status_code
                    assert status == 403, f"viewer {method} {path}: {status}"


def test_anonymous_page_redirects_to_sign_in_and_back_after(
    make_container: ContainerFactory,
) -> None:
    """The sign-in page remembers where the operator was going; a good password gets there."""
    container = admin_container(make_container)
    with console(container) as client:
        answer = client.get("/admin/approvals", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/login?next=%2Fadmin%2Fapprovals"
        form = client.get(answer.headers["location"]).text
        answer = client.post(
            "/admin/login",
            data={
                "name": OPERATOR,
                "password": PASSWORD,
                "csrf_token": csrf_from(form),
                "next": "/admin/approvals",
            },
            follow_redirects=False,
        )
        assert (answer.status_code, answer.headers["location"]) == (303, "/admin/approvals")
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert client.get("/admin/approvals").status_code == 200


@pytest.mark.parametrize(
    ("name", "password"),
    [(OPERATOR, "wrong password"), ("nobody", PASSWORD), (OPERATOR, "")],
)
def test_wrong_credentials_are_refused_without_a_session(
    make_container: ContainerFactory, name: str, password: str
) -> None:
    """A wrong password or unknown name: 401 with the form again, and still signed out."""
    with console(admin_container(make_container)) as client:
        token = csrf_from(client.get("/admin/login").text)
        answer = client.post(
            "/admin/login",
            data={"name": name, "password": password, "csrf_token": token},
            follow_redirects=False,
        )
        assert answer.status_code == 401
        assert "do not match an operator" in answer.text
        assert client.get("/admin", follow_redirects=False).status_code == 303


def test_sign_in_without_the_forms_csrf_token_is_refused(make_container: ContainerFactory) -> None:
    """A login POST that did not come from our form (no or wrong token) is 403."""
    with console(admin_container(make_container)) as client:
        client.get("/admin/login")
        answer = client.post(
            "/admin/login",
            data={"name": OPERATOR, "password": PASSWORD, "csrf_token": "forged"},
            follow_redirects=False,
        )
        assert answer.status_code == 403
        assert client.get("/admin", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_console(make_container: ContainerFactory) -> None:
    """An open redirect through `next` (//evil.example, https://...) lands on /admin instead."""
    with console(admin_container(make_container)) as client:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            token = csrf_from(client.get("/admin/login").text)
            answer = client.post(
                "/admin/login",
                data={"name": OPERATOR, "password": PASSWORD, "csrf_token": token, "next": target},
                follow_redirects=False,
            )
            assert answer.headers["location"] == "/admin", target
            client.cookies.clear()


def test_sign_out_ends_the_session_and_needs_the_csrf_token(
    make_container: ContainerFactory,
) -> None:
    """Sign-out without the token is refused (403); with it the cookie is gone."""
    with console(admin_container(make_container), OPERATOR) as client:
        token = csrf_from(client.get("/admin").text)
        assert client.post("/admin/logout", data={}, follow_redirects=False).status_code == 403
        answer = client.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/admin/login")
        assert client.get("/admin", follow_redirects=False).status_code == 303


def test_a_tampered_session_cookie_is_ignored(make_container: ContainerFactory) -> None:
    """A cookie naming an operator but not signed by us signs nobody in."""
    container = admin_container(make_container)
    with TestClient(create_app(container)) as client:
        forged = base64.urlsafe_b64encode(b'{"op":"olga","csrf":"x"}').decode()
        client.cookies.set("mps_admin", forged + ".AAAA.BBBB")
        assert client.get("/admin", follow_redirects=False).status_code == 303


def test_api_takes_basic_credentials_and_refuses_bad_ones(
    make_container: ContainerFactory,
) -> None:
    """Scripts use HTTP Basic: right password 200, wrong 401 with a Basic challenge."""
    with console(admin_container(make_container)) as client:
        good = client.get("/api/v1/overview", auth=(VIEWER, PASSWORD))
        assert good.status_code == 200
        assert "entitlements_by_state" in good.json()
        bad = client.get("/api/v1/overview", auth=(VIEWER, "nope"))
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"].startswith("Basic")


def test_api_actions_refuse_a_form_body(make_container: ContainerFactory) -> None:
    """An action must be JSON (a cross-site form cannot send it): a form body is 415 or 422."""
    with console(admin_container(make_container)) as client:
        answer = client.post(
            "/api/v1/notifications/x/replay", data={"a": "b"}, auth=(OPERATOR, PASSWORD)
        )
        assert answer.status_code == 415


def test_sandbox_without_operators_has_a_default_admin(make_container: ContainerFactory) -> None:
    """Sandbox, ADMIN_OPERATORS empty: `admin` with the process's printed password works."""
    from marketplace_saas.adapters.operators import sandbox_password

    with console(make_container()) as client:
        page = client.get("/admin/login").text
        assert "sign in as <code>admin</code>" in page
        token = csrf_from(page)
        answer = client.post(
            "/admin/login",
            data={"name": "admin", "password": sandbox_password(), "csrf_token": token},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        assert client.get("/admin").status_code == 200
