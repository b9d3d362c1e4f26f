"""Provider-configured sign-up fields over HTTP: the form renders them, the server validates them
(422 with inline errors, nothing stored), and a valid sign-up stores every answer."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Customer
from marketplace_saas.bootstrap import Container
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.signup_support import (
    FORM,
    client,
    csrf_of,
    emulator_token,
    row_counts,
    signup_container,
)

pytestmark = pytest.mark.integration

FIELDS = [
    {"name": "name", "label": "Your name", "type": "text", "required": True, "maxLength": 200},
    {"name": "email", "label": "Work email", "type": "email", "required": True},
    {"name": "company", "label": "Company", "type": "text", "required": True},
    {
        "name": "team_size",
        "label": "Team size",
        "type": "select",
        "required": True,
        "options": ["1-10", {"value": "11-50", "label": "11 to 50 <people>"}],
    },
    {"name": "website", "label": "Website", "type": "url"},
    {"name": "terms", "label": "I accept the terms", "type": "checkbox", "required": True},
]
GOOD = {**FORM, "team_size": "11-50", "website": "https://engines.example", "terms": "yes"}


def open_form(container: Container, emulator: Emulator) -> tuple[object, str, str]:
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    http = client(container)
    page = http.post("/signup", data={"x-gcp-marketplace-token": emulator_token(account.id)})
    assert page.status_code == 200, page.text
    return http, page.text, account.id


def test_configured_fields_render_with_their_input_types_and_options(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    container = signup_container(make_container, emulator_url, signup_fields=json.dumps(FIELDS))
    _http, html, _account = open_form(container, emulator)
    assert re.search(r'<select id="field-team_size" name="team_size"[^>]*required', html)
    assert '<option value="11-50">11 to 50 &lt;people&gt;</option>' in html
    assert re.search(r'name="terms" type="checkbox" value="yes"', html)
    assert re.search(r'name="website" type="url"', html)
    assert re.search(r'name="email" type="email"', html)
    assert "I accept the terms" in html
    assert "Website <span" in html, "an optional field says so"


def test_bad_answers_get_422_with_inline_errors_escaped_values_and_no_record(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    container = signup_container(make_container, emulator_url, signup_fields=json.dumps(FIELDS))
    http, html, _account = open_form(container, emulator)
    before = row_counts(container)
    answers = {
        **FORM,
        "name": '<script>alert("x")</script>',
        "team_size": "1000",
        "website": "javascript:alert(1)",
        "csrf_token": csrf_of(html),
    }
    response = http.post("/signup/complete", data=answers)  # no "terms": unticked
    assert response.status_code == 422
    page = response.text
    assert 'id="error-team_size">Please choose one of the options for team size.' in page
    assert 'id="error-website">Please enter a web address like https://example.com.' in page
    assert 'id="error-terms">Please tick \u201cI accept the terms\u201d to continue.' in page
    assert "error-name" not in page, "a valid field keeps no error"
    assert "<script>alert" not in page
    assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in page
    assert row_counts(container) == before, "nothing is stored until the answers are valid"


def test_valid_answers_are_stored_and_fill_the_customers_columns(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    container = signup_container(make_container, emulator_url, signup_fields=json.dumps(FIELDS))
    http, html, account_id = open_form(container, emulator)
    response = http.post("/signup/complete", data={**GOOD, "csrf_token": csrf_of(html)})
    assert (response.status_code, response.headers["location"]) == (303, "/signup/done")
    expected = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines",
        "team_size": "11-50",
        "website": "https://engines.example",
        "terms": True,
    }
    with container.sessions() as session:
        customer = session.scalars(sa.select(Customer)).one()
        assert customer.signup_data["fields"] == expected
        assert customer.signup_data["accounts"][account_id]["fields"] == expected
        assert (customer.name, customer.email, customer.company) == (
            "Ada Lovelace",
            "ada@example.com",
            "Analytical Engines",
        )


def test_columns_without_a_field_of_their_name_stay_empty(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    """Only fields named name, email and company fill those columns; others live in signup_data."""
    fields = [
        {"name": "email", "label": "Work email", "type": "email", "required": True},
        {"name": "full_name", "label": "Full name", "required": True},
    ]
    container = signup_container(make_container, emulator_url, signup_fields=json.dumps(fields))
    http, html, _account = open_form(container, emulator)
    answers = {"email": "ada@example.com", "full_name": "Ada", "csrf_token": csrf_of(html)}
    assert http.post("/signup/complete", data=answers).status_code == 303
    with container.sessions() as session:
        customer = session.scalars(sa.select(Customer)).one()
        assert (customer.name, customer.email, customer.company) == (None, "ada@example.com", None)
        assert customer.signup_data["fields"] == {"email": "ada@example.com", "full_name": "Ada"}
    done = http.get("/signup/done").text
    assert "You're all set</h1>" in done, "no dangling comma without a name"
    assert "We email <strong>ada@example.com</strong>" in done
    assert "<dt>Name</dt>" not in done
