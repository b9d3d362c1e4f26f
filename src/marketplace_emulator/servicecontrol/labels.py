"""Usage labels (`userLabels` of a report operation) as Google Cloud Marketplace states them.

Google's best-practices page for usage labeling reserves two keys,
`cloudmarketplace.googleapis.com/resource_name` ("the name of the resource associated with a usage
metric") and `cloudmarketplace.googleapis.com/container_name` ("the name of a resource container"),
and says labels "must conform to the syntax requirements" of Resource Manager labels:
- at most 64 labels;
- keys of 1 to 63 characters, starting with a lowercase letter or an international character;
- values of 0 to 63 characters;
- keys and values of lowercase letters, digits, underscores and dashes (international characters
  allowed).
The reserved keys are accepted as they are spelled; their values follow the value rules.

What Google does with a label that breaks these rules is not documented. The emulator's choice:
the operation fails in `reportErrors` with INVALID_ARGUMENT naming the label (see models.py).
"""

from __future__ import annotations

from collections.abc import Mapping

RESOURCE_NAME = "cloudmarketplace.googleapis.com/resource_name"
CONTAINER_NAME = "cloudmarketplace.googleapis.com/container_name"
RESERVED_KEYS = frozenset({RESOURCE_NAME, CONTAINER_NAME})
MAX_LABELS = 64
MAX_LENGTH = 63


def _allowed(ch: str) -> bool:
    return ch in "_-" or ("0" <= ch <= "9") or (ch.isalpha() and not ch.isupper())


def _starts_well(ch: str) -> bool:
    return ch.isalpha() and not ch.isupper()


def label_problem(labels: Mapping[str, str]) -> str | None:
    """Why `labels` break the label syntax, or None when they follow it."""
    if len(labels) > MAX_LABELS:
        return f"{len(labels)} labels: at most {MAX_LABELS} are allowed."
    for key, value in labels.items():
        if key not in RESERVED_KEYS:
            if not 1 <= len(key) <= MAX_LENGTH:
                return f"label key {key!r} must be 1 to {MAX_LENGTH} characters long."
            if not _starts_well(key[0]):
                return f"label key {key!r} must start with a lowercase letter."
            if not all(_allowed(ch) for ch in key):
                return (
                    f"label key {key!r} may hold only lowercase letters, digits, '_' and '-' "
                    f"(reserved keys: {', '.join(sorted(RESERVED_KEYS))})."
                )
        if len(value) > MAX_LENGTH:
            return f"label {key!r}: the value must be at most {MAX_LENGTH} characters long."
        if not all(_allowed(ch) for ch in value):
            return (
                f"label {key!r}: the value {value!r} may hold only lowercase letters, digits, "
                "'_' and '-'."
            )
    return None
