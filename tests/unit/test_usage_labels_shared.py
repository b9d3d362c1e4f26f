"""One table of usage labels, judged by both copies of Google's label rule.

The backend checks labels at `POST /v1/usage` (`marketplace_saas.domain.usage.label_problem`);
the emulator's Service Control checks a report's `userLabels`
(`marketplace_emulator.servicecontrol.labels.label_problem`). The two packages stay apart (the
backend never imports the emulator), so this table pins them to the same answers.
"""

from __future__ import annotations

import pytest

from marketplace_emulator.servicecontrol import labels as emulator_labels
from marketplace_saas.domain import usage as backend_labels

RESOURCE = "cloudmarketplace.googleapis.com/resource_name"
CONTAINER = "cloudmarketplace.googleapis.com/container_name"

# (labels, valid?)
TABLE: list[tuple[dict[str, str], bool]] = [
    ({}, True),
    ({"environment": "prod"}, True),
    ({RESOURCE: "orders-db", CONTAINER: "storefront-prod"}, True),
    ({RESOURCE: ""}, True),
    ({"a": ""}, True),
    ({"k" * 63: "v" * 63}, True),
    ({"zone_1-b": "eu-west1_b"}, True),
    ({"région": "île-de-france"}, True),  # international lowercase letters
    ({f"k{i}": "v" for i in range(64)}, True),
    ({f"k{i}": "v" for i in range(65)}, False),  # more than 64 labels
    ({"": "v"}, False),
    ({"k" * 64: "v"}, False),
    ({"a": "v" * 64}, False),
    ({"Env": "prod"}, False),  # uppercase key
    ({"env": "Prod"}, False),  # uppercase value
    ({"1env": "prod"}, False),  # key starts with a digit
    ({"_env": "prod"}, False),
    ({"-env": "prod"}, False),
    ({"env.name": "prod"}, False),
    ({"example.com/resource_name": "x"}, False),  # only Google's two reserved keys
    ({"cloudmarketplace.googleapis.com/other": "x"}, False),
    ({RESOURCE: "Orders"}, False),  # reserved keys' values follow the value rules
    ({CONTAINER: "a/b"}, False),
    ({"env": "prod\n"}, False),  # a trailing newline is not allowed
    ({"env\n": "prod"}, False),
    ({"env": "pr od"}, False),
    ({"env": "prod!"}, False),
    ({"env": "٣"}, False),  # other scripts' digits are not letters
]


@pytest.mark.parametrize(
    "rule",
    [backend_labels.label_problem, emulator_labels.label_problem],
    ids=["backend", "emulator"],
)
@pytest.mark.parametrize(("labels", "valid"), TABLE, ids=[str(i) for i in range(len(TABLE))])
def test_both_copies_of_the_label_rule_give_the_same_verdict(
    rule: object, labels: dict[str, str], valid: bool
) -> None:
    """Each row is accepted or refused alike by the backend's and the emulator's label rule."""
    assert callable(rule)
    problem = rule(labels)
    assert (problem is None) is valid, problem


def test_parse_labels_refuses_a_reserved_key_given_under_both_names() -> None:
    """`resource_name` is the backend's short name of the reserved key: both at once is refused."""
    with pytest.raises(backend_labels.UsageError, match="same reserved label"):
        backend_labels.parse_labels({"resource_name": "a", RESOURCE: "b"})
    assert backend_labels.parse_labels({RESOURCE: "a", "env": "b"}) == {RESOURCE: "a", "env": "b"}


def test_parse_labels_refuses_what_the_rule_refuses() -> None:
    """`POST /v1/usage` parsing refuses a label the shared rule refuses (and says why)."""
    with pytest.raises(backend_labels.UsageError, match="lowercase"):
        backend_labels.parse_labels({"env": "prod\n"})
