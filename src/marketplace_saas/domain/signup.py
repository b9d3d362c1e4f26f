"""Sign-up, the pure part: who is signing up, what they bought, and the form they fill in.

`Visitor` is the verified buyer (it travels in the signed sign-up session); `Purchase` one of
their entitlements as shown on the page. `DEFAULT_FIELDS` is what the page asks by default (name,
work email, company); `parse_fields(config)` reads a provider's own fields (`SIGNUP_FIELDS`,
docs/signup.md) and raises `InvalidFieldConfig` naming the field at fault. `validate(fields,
form)` returns the cleaned values (text, or true/false for a checkbox) and, per field, a sentence
saying what is wrong, ready to show next to the field. Standard library only.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from marketplace_saas.domain.entitlements import EntitlementView
from marketplace_saas.domain.offers import OfferTerms

# One @, no spaces, a dot in the domain: strict enough to catch typos, loose enough for real
# addresses (RFC 5321 limits the whole address to 254 characters).
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


@dataclass(frozen=True)
class Visitor:
    """The verified buyer: the procurement account, and who they are at Google."""

    account_id: str
    user_identity: str | None = None
    roles: tuple[str, ...] = ()
    orders: tuple[str, ...] = ()

    def to_session(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_session(cls, data: Mapping[str, Any]) -> Visitor | None:
        account = data.get("account_id")
        if not isinstance(account, str) or not account:
            return None
        identity = data.get("user_identity")
        return cls(
            account_id=account,
            user_identity=identity if isinstance(identity, str) else None,
            roles=tuple(str(r) for r in data.get("roles") or ()),
            orders=tuple(str(o) for o in data.get("orders") or ()),
        )


@dataclass(frozen=True)
class Purchase:
    """One entitlement (order) of the buyer's account, as the sign-up pages show it.

    `named_in_token`: the sign-up token's `google.orders` names it. `offer_end_time` (RFC 3339)
    and `private`: its offer's end and kind. A state of `NOT_FOUND` is an order the token names
    that the account does not hold (or no longer holds) in service."""

    entitlement_id: str
    product: str | None
    plan: str | None
    state: str
    named_in_token: bool = False
    offer_end_time: str | None = None
    private: bool = False

    @classmethod
    def from_view(cls, view: EntitlementView, orders: Sequence[str] = ()) -> Purchase:
        terms = OfferTerms.of(view.raw, view.state)
        named = view.id in orders or (view.order_id is not None and view.order_id in orders)
        return cls(
            view.id, view.product, view.plan, view.state, named, terms.end_time, terms.private
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Purchase | None:
        entitlement = data.get("entitlement_id")
        if not isinstance(entitlement, str):
            return None
        product, plan, end = data.get("product"), data.get("plan"), data.get("offer_end_time")
        return cls(
            entitlement,
            product if isinstance(product, str) else None,
            plan if isinstance(plan, str) else None,
            str(data.get("state") or ""),
            data.get("named_in_token") is True,
            end if isinstance(end, str) else None,
            data.get("private") is True,
        )

    def with_state(self, state: str) -> Purchase:
        return replace(self, state=state)


NOT_FOUND = "NOT_FOUND"


def orders_shown(purchases: Sequence[Purchase], orders: Sequence[str]) -> list[Purchase]:
    """The account's orders, then each order the token names that is not among them."""
    listed = {p.entitlement_id for p in purchases}
    missing = [o for o in dict.fromkeys(orders) if o not in listed]
    return [*purchases, *(Purchase(o, None, None, NOT_FOUND, named_in_token=True) for o in missing)]


FieldKind = Literal["text", "email", "tel", "url", "select", "checkbox"]
FIELD_KINDS: tuple[str, ...] = ("text", "email", "tel", "url", "select", "checkbox")
# A field's name is its form input's name and its key in `customers.signup_data`.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Names the page uses itself (the CSRF field, `entrypoints.web.security.CSRF_FIELD`).
RESERVED_NAMES = frozenset({"csrf_token"})
# Fields with these names also fill the customer's column of the same name, which holds this much.
RECORD_COLUMNS: Mapping[str, int] = {"name": 200, "email": 320, "company": 200}
_MAX_LENGTH_LIMIT = 10_000
_DEFAULT_MAX_LENGTH = {"email": 254, "url": 2048, "tel": 32}
_CONFIG_KEYS = frozenset(
    {"name", "label", "type", "required", "maxLength", "options", "hint", "autocomplete"}
)
_TEL = re.compile(r"^\+?[0-9 ().-]+$")


class InvalidFieldConfig(ValueError):
    """The configured sign-up fields are unusable; the message names the field and the problem."""


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: FieldKind = "text"
    required: bool = True
    max_length: int = 200
    autocomplete: str = "on"
    hint: str = ""
    noun: str = ""  # how error messages name it ("your work email"); the label by default
    options: tuple[Option, ...] = ()  # a select's choices


DEFAULT_FIELDS: tuple[FormField, ...] = (
    FormField("name", "Your name", autocomplete="name", noun="your name"),
    FormField(
        "email",
        "Work email",
        kind="email",
        max_length=254,
        autocomplete="email",
        hint="We send your account details and service notices here.",
        noun="your work email",
    ),
    FormField("company", "Company", autocomplete="organization", noun="your company"),
)


def parse_fields(config: object) -> tuple[FormField, ...]:
    """The form's fields from their configuration: a list of objects (see docs/signup.md)."""
    if not isinstance(config, list) or not config:
        raise InvalidFieldConfig("the sign-up fields must be a non-empty list of field objects")
    fields: list[FormField] = []
    seen: set[str] = set()
    for position, item in enumerate(config, start=1):
        spec = _parse_field(position, item)
        if spec.name in seen:
            raise InvalidFieldConfig(f"sign-up field {spec.name!r} is defined twice")
        seen.add(spec.name)
        fields.append(spec)
    return tuple(fields)


def load_fields(text: str, *, toml: bool = False) -> tuple[FormField, ...]:
    """Fields from JSON (a list, or `{"fields": [...]}`) or TOML (`[[fields]]` tables)."""
    try:
        data = tomllib.loads(text) if toml else json.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise InvalidFieldConfig(f"not valid {'TOML' if toml else 'JSON'}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"fields"}:
        data = data["fields"]
    return parse_fields(data)


def _parse_field(position: int, item: object) -> FormField:
    if not isinstance(item, dict):
        raise InvalidFieldConfig(f"sign-up field #{position} must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_NAMES:
        raise InvalidFieldConfig(
            f"sign-up field #{position} has a bad name {name!r}: use letters, digits and "
            "underscores, starting with a letter or underscore (at most 64; not csrf_token)"
        )

    def problem(text: str) -> InvalidFieldConfig:
        return InvalidFieldConfig(f"sign-up field {name!r}: {text}")

    unknown = sorted(set(item) - _CONFIG_KEYS)
    if unknown:
        raise problem(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_CONFIG_KEYS))})")
    kind = item.get("type", "text")
    if kind not in FIELD_KINDS:
        raise problem(f"unknown type {kind!r} (one of {', '.join(FIELD_KINDS)})")
    label = item.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > 200:
        raise problem("label must be a non-empty text of at most 200 characters")
    required = item.get("required", False)
    if not isinstance(required, bool):
        raise problem("required must be true or false")
    limit = RECORD_COLUMNS.get(name, _MAX_LENGTH_LIMIT)
    max_length = item.get("maxLength", min(_DEFAULT_MAX_LENGTH.get(kind, 200), limit))
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise problem("maxLength must be a whole number")
    if not 1 <= max_length <= limit:
        raise problem(f"maxLength must be between 1 and {limit}")
    options = _parse_options(item.get("options"), kind, problem)
    texts = {key: item.get(key, default) for key, default in (("hint", ""), ("autocomplete", "on"))}
    for key, value in texts.items():
        if not isinstance(value, str) or len(value) > 500:
            raise problem(f"{key} must be a text of at most 500 characters")
    return FormField(
        name=name,
        label=label.strip(),
        kind=kind,
        required=required,
        max_length=max_length,
        autocomplete=texts["autocomplete"],
        hint=texts["hint"],
        options=options,
    )


def _parse_options(
    raw: object, kind: str, problem: Callable[[str], InvalidFieldConfig]
) -> tuple[Option, ...]:
    if kind != "select":
        if raw is not None:
            raise problem("options are only for a select")
        return ()
    if not isinstance(raw, list) or not raw:
        raise problem("a select needs a non-empty list of options")
    options: list[Option] = []
    for entry in raw:
        if isinstance(entry, str):
            entry = {"value": entry, "label": entry}
        value = entry.get("value") if isinstance(entry, dict) else None
        label = entry.get("label") or value if isinstance(entry, dict) else None
        if not isinstance(value, str) or not value.strip() or not isinstance(label, str):
            raise problem(f"option {entry!r} must be a text or {{value, label}} texts")
        if value in {o.value for o in options}:
            raise problem(f"option {value!r} is listed twice")
        options.append(Option(value, label))
    return tuple(options)


Answer = str | bool


@dataclass(frozen=True)
class Validated:
    values: dict[str, Answer] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _clean(value: str) -> str:
    """Trimmed, NFC-normalised, inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf") for char in value)


def _is_url(value: str) -> bool:
    if " " in value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _kind_error(spec: FormField, value: str) -> str | None:
    """What is wrong with a non-empty, well-sized answer for this field's type, if anything."""
    if spec.kind == "email" and not _EMAIL.match(value):
        return "Please enter an email address like name@company.com."
    if spec.kind == "tel" and not (_TEL.match(value) and sum(c.isdigit() for c in value) >= 5):
        return "Please enter a phone number like +1 650 555 0100."
    if spec.kind == "url" and not _is_url(value):
        return "Please enter a web address like https://example.com."
    return None


def validate(fields: Sequence[FormField], form: Mapping[str, str]) -> Validated:
    """The cleaned answers (a checkbox's is true or false) and, per field, what is wrong."""
    values: dict[str, Answer] = {}
    errors: dict[str, str] = {}
    for spec in fields:
        raw = form.get(spec.name, "")
        label = spec.noun or spec.label.lower()
        if spec.kind == "checkbox":
            values[spec.name] = checked = bool(raw)
            if spec.required and not checked:
                errors[spec.name] = f"Please tick \u201c{spec.label}\u201d to continue."
            continue
        value = _clean(raw)
        values[spec.name] = value
        if not value:
            if spec.required:
                verb = "choose" if spec.kind == "select" else "enter"
                errors[spec.name] = f"Please {verb} {label}."
            continue
        if spec.kind == "select":  # one of the configured values, nothing else to check
            if value not in {o.value for o in spec.options}:
                errors[spec.name] = f"Please choose one of the options for {label}."
        elif len(value) > spec.max_length:
            errors[spec.name] = f"Please keep {label} under {spec.max_length} characters."
        elif _has_control_characters(value):
            errors[spec.name] = f"Please remove the special characters from {label}."
        elif (message := _kind_error(spec, value)) is not None:
            errors[spec.name] = message
    return Validated(values=values, errors=errors)
