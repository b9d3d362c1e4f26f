"""Sign-up, the pure part: who is signing up, what they bought, and the form they fill in.

`Visitor` is the verified buyer (it travels in the signed sign-up session); `Purchase` one of
their entitlements as shown on the page. `DEFAULT_FIELDS` is what the page asks by default (name,
work email, company); `validate(fields, form)` returns the cleaned values and, per field, a
sentence saying what is wrong, ready to show next to the field. Standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from marketplace_saas.domain.entitlements import EntitlementView

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
    """One entitlement of the buyer's account, as the sign-up pages show it."""

    entitlement_id: str
    product: str | None
    plan: str | None
    state: str

    @classmethod
    def from_view(cls, view: EntitlementView) -> Purchase:
        return cls(view.id, view.product, view.plan, view.state)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Purchase | None:
        entitlement = data.get("entitlement_id")
        if not isinstance(entitlement, str):
            return None
        product, plan = data.get("product"), data.get("plan")
        return cls(
            entitlement,
            product if isinstance(product, str) else None,
            plan if isinstance(plan, str) else None,
            str(data.get("state") or ""),
        )


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: Literal["text", "email"] = "text"
    required: bool = True
    max_length: int = 200
    autocomplete: str = "on"
    hint: str = ""
    noun: str = ""  # how error messages name it ("your work email"); the label by default


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


@dataclass(frozen=True)
class Validated:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _clean(value: str) -> str:
    """Trimmed, NFC-normalised, inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf") for char in value)


def validate(fields: Sequence[FormField], form: Mapping[str, str]) -> Validated:
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for spec in fields:
        raw = form.get(spec.name, "")
        value = _clean(raw)
        label = spec.noun or spec.label.lower()
        values[spec.name] = value
        if not value:
            if spec.required:
                errors[spec.name] = f"Please enter {label}."
            continue
        if len(value) > spec.max_length:
            errors[spec.name] = f"Please keep {label} under {spec.max_length} characters."
        elif _has_control_characters(value):
            errors[spec.name] = f"Please remove the special characters from {label}."
        elif spec.kind == "email" and not _EMAIL.match(value):
            errors[spec.name] = "Please enter an email address like name@company.com."
    return Validated(values=values, errors=errors)
