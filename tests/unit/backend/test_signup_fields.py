"""Provider-configured sign-up fields: reading SIGNUP_FIELDS(_FILE), refusing bad ones, and
validating each type of answer (pure, no I/O but a temporary file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from marketplace_saas.config import Settings
from marketplace_saas.domain.signup import (
    DEFAULT_FIELDS,
    RESERVED_NAMES,
    FormField,
    InvalidFieldConfig,
    Option,
    parse_fields,
    validate,
)
from marketplace_saas.entrypoints.web.security import CSRF_FIELD

EXTRA: list[dict[str, Any]] = [
    {"name": "name", "label": "Your name", "type": "text", "required": True, "maxLength": 120},
    {"name": "email", "label": "Work email", "type": "email", "required": True},
    {"name": "phone", "label": "Phone", "type": "tel"},
    {"name": "website", "label": "Website", "type": "url", "hint": "Your company's site."},
    {
        "name": "team_size",
        "label": "Team size",
        "type": "select",
        "required": True,
        "options": ["1-10", {"value": "11+", "label": "Eleven or more"}],
    },
    {"name": "terms", "label": "I accept the terms", "type": "checkbox", "required": True},
]


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def _no_fields_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNUP_FIELDS", raising=False)
    monkeypatch.delenv("SIGNUP_FIELDS_FILE", raising=False)


def test_without_configuration_the_form_asks_exactly_name_work_email_and_company() -> None:
    assert settings().signup_fields == DEFAULT_FIELDS
    assert [f.name for f in DEFAULT_FIELDS] == ["name", "email", "company"]


def test_json_in_the_variable_configures_names_labels_types_options_and_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNUP_FIELDS", json.dumps(EXTRA))
    fields = {f.name: f for f in settings().signup_fields}
    assert list(fields) == ["name", "email", "phone", "website", "team_size", "terms"]
    assert fields["name"] == FormField("name", "Your name", "text", True, 120)
    assert (fields["email"].kind, fields["email"].max_length) == ("email", 254)
    assert fields["phone"].required is False, "optional unless configured as required"
    assert fields["website"].hint == "Your company's site."
    assert fields["team_size"].options == (Option("1-10", "1-10"), Option("11+", "Eleven or more"))
    assert fields["terms"].kind == "checkbox"


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_json_or_toml_file_configures_the_same_fields(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"fields{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"fields": EXTRA}), encoding="utf-8")
    else:
        path.write_text(
            '[[fields]]\nname = "team_size"\nlabel = "Team size"\ntype = "select"\n'
            'required = true\noptions = ["1-10", { value = "11+", label = "Eleven or more" }]\n'
            '\n[[fields]]\nname = "terms"\nlabel = "I accept the terms"\ntype = "checkbox"\n'
            "required = true\n",
            encoding="utf-8",
        )
    fields = settings(signup_fields_file=path).signup_fields
    assert [f.name for f in fields][-2:] == ["team_size", "terms"]
    assert fields[-2].options[1] == Option("11+", "Eleven or more")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"name": "dob", "label": "Born", "type": "date"}], "'dob': unknown type 'date'"),
        (
            [{"name": "a", "label": "A"}, {"name": "a", "label": "Again"}],
            "field 'a' is defined twice",
        ),
        ([{"name": "size", "label": "Size", "type": "select"}], "'size': a select needs"),
        (
            [{"name": "size", "label": "Size", "type": "select", "options": []}],
            "'size': a select needs",
        ),
        ([{"name": "first-name", "label": "First"}], "bad name 'first-name'"),
        ([{"name": "2fa", "label": "Code"}], "bad name '2fa'"),
        ([{"name": "csrf_token", "label": "Sneaky"}], "bad name 'csrf_token'"),
        ([{"label": "Nameless"}], "field #1 has a bad name None"),
        ([{"name": "x", "label": "X", "maxlength": 5}], "'x': unknown key 'maxlength'"),
        ([{"name": "x", "label": ""}], "'x': label must be"),
        ([{"name": "x", "label": "X", "required": "yes"}], "'x': required must be"),
        ([{"name": "x", "label": "X", "maxLength": 0}], "'x': maxLength must be between"),
        ([{"name": "name", "label": "N", "maxLength": 500}], "maxLength must be between 1 and 200"),
        ([{"name": "x", "label": "X", "options": ["a"]}], "'x': options are only for a select"),
        ([{"name": "s", "label": "S", "type": "select", "options": ["a", "a"]}], "listed twice"),
        ([], "non-empty list"),
        ({"name": "x"}, "non-empty list"),
    ],
)
def test_a_bad_configuration_is_refused_at_startup_naming_the_field(
    fields: object, message: str
) -> None:
    with pytest.raises(InvalidFieldConfig, match=message):
        parse_fields(fields)
    with pytest.raises(ValidationError, match="SIGNUP_FIELDS") as caught:
        settings(signup_fields=json.dumps(fields))
    assert message in str(caught.value)


def test_not_json_and_unreadable_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"SIGNUP_FIELDS.*not valid JSON"):
        settings(signup_fields="name,email")
    broken = tmp_path / "fields.toml"
    broken.write_text("[[fields]\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"SIGNUP_FIELDS_FILE .*fields\.toml: not valid TOML"):
        settings(signup_fields_file=broken)
    with pytest.raises(ValidationError, match=r"SIGNUP_FIELDS_FILE .*missing\.json"):
        settings(signup_fields_file=tmp_path / "missing.json")


def test_the_variable_and_the_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(EXTRA), encoding="utf-8")
    with pytest.raises(ValidationError, match="SIGNUP_FIELDS or SIGNUP_FIELDS_FILE, not both"):
        settings(signup_fields=json.dumps(EXTRA), signup_fields_file=path)


def test_the_csrf_field_name_cannot_be_taken_by_a_configured_field() -> None:
    assert CSRF_FIELD in RESERVED_NAMES


FIELDS = parse_fields(EXTRA)
GOOD = {"name": "Ada", "email": "ada@example.com", "team_size": "11+", "terms": "yes"}


def test_good_answers_of_every_type_are_accepted_and_a_checkbox_is_true_or_false() -> None:
    result = validate(FIELDS, {**GOOD, "phone": "+1 (650) 555-0100", "website": "https://a.io/x"})
    assert result.errors == {}
    assert result.values == {
        "name": "Ada",
        "email": "ada@example.com",
        "phone": "+1 (650) 555-0100",
        "website": "https://a.io/x",
        "team_size": "11+",
        "terms": True,
    }


def test_optional_fields_may_stay_empty_and_an_optional_checkbox_is_false() -> None:
    optional = parse_fields([{"name": "news", "label": "Send me news", "type": "checkbox"}])
    assert validate(optional, {}).values == {"news": False}
    assert validate(FIELDS, GOOD).values["website"] == ""


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "call me", "Please enter a phone number like +1 650 555 0100."),
        ("phone", "+1 23", "Please enter a phone number like +1 650 555 0100."),
        ("website", "example.com", "Please enter a web address like https://example.com."),
        ("website", "javascript:alert(1)", "Please enter a web address like https://example.com."),
        ("website", "https://", "Please enter a web address like https://example.com."),
        ("website", "https://a b.com", "Please enter a web address like https://example.com."),
        ("team_size", "500", "Please choose one of the options for team size."),
        ("team_size", "", "Please choose team size."),
        ("terms", "", "Please tick \u201cI accept the terms\u201d to continue."),
        ("email", "ada@", "Please enter an email address like name@company.com."),
        ("name", "n" * 121, "Please keep your name under 120 characters."),
        ("name", "", "Please enter your name."),
    ],
)
def test_each_type_checks_its_own_answers_server_side(field: str, value: str, message: str) -> None:
    assert validate(FIELDS, {**GOOD, field: value}).errors == {field: message}
