"""Console test helpers: configured operators, a signed-in TestClient, CSRF tokens from pages."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from marketplace_saas.adapters.operators import hash_password
from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.conftest import ContainerFactory

PASSWORD = "correct horse battery staple"
OPERATOR = "olga"
VIEWER = "vic"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@functools.cache
def operators_setting() -> str:
    """ADMIN_OPERATORS for the tests: olga (operator) and vic (viewer), one password."""
    hashed = hash_password(PASSWORD)
    return f"{OPERATOR}:operator:{hashed},{VIEWER}:viewer:{hashed}"


def admin_container(make_container: ContainerFactory, **overrides: Any) -> Container:
    return make_container(admin_operators=operators_setting(), **overrides)


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in through the form; the session's CSRF token."""
    token = csrf_from(client.get("/admin/login").text)
    answer = client.post(
        "/admin/login",
        data={"name": name, "password": password, "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_from(client.get("/admin").text)


@contextmanager
def console(container: Container, as_name: str | None = None) -> Iterator[TestClient]:
    """A TestClient on the whole app, signed in as `as_name` when given."""
    with TestClient(create_app(container), base_url="http://testserver") as client:
        if as_name is not None:
            sign_in(client, as_name)
        yield client
