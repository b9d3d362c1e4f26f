"""The `entitlements.list` filter language of reference section 1.8."""

from __future__ import annotations

import pytest

from marketplace_emulator.procurement.filters import FilterError, parse_filter

ALPHA = {
    "account": ["E-1234", "providers/p/accounts/E-1234"],
    "plan": ["basic"],
    "state": ["ENTITLEMENT_ACTIVE"],
    "new_pending_plan": [],
    "product": ["example-product", "example.endpoints.x.cloud.goog", "p:example-product"],
    "consumers.project": ["projects/123456789"],
    "change_history.new_offer": ["projects/1/services/s/privateOffers/o1", "offers/o2"],
}
BETA = {
    "account": ["5678", "providers/p/accounts/5678"],
    "plan": ["pro"],
    "state": ["ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"],
    "new_pending_plan": ["basic"],
    "product": ["foo-product"],
    "consumers.project": [],
    "change_history.new_offer": [],
}


def matching(text: str) -> list[str]:
    f = parse_filter(text)
    return [name for name, fields in (("alpha", ALPHA), ("beta", BETA)) if f.matches(fields)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["alpha", "beta"]),
        ("   ", ["alpha", "beta"]),
        ("account=E-1234", ["alpha"]),
        ("account=providers/p/accounts/5678", ["beta"]),
        ("plan!=basic", ["beta"]),
        ("state=active", ["alpha"]),
        ("state=ACTIVE", ["alpha"]),
        ("state=entitlement_active", ["alpha"]),
        ("state=ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", ["beta"]),
        ("state!=active", ["beta"]),
        ("newPendingPlan=basic", ["beta"]),
        ("new_pending_plan=basic", ["beta"]),
        ('product="p:example-product"', ["alpha"]),
        ("consumers.project:projects/123456789", ["alpha"]),
        ('change_history.new_offer:"offers/o2"', ["alpha"]),
        ("account=E-1234 state=active", ["alpha"]),
        ("account=E-1234 state=pending_plan_change_approval", []),
        ("account=E-1234 OR account=5678", ["alpha", "beta"]),
        ("NOT plan=basic", ["beta"]),
        ("NOT (product=foo-product)", ["alpha"]),
        (
            "state=active AND (account=E-1234 OR account=5678) AND NOT (product=foo-product)",
            ["alpha"],
        ),
        ('plan="a \\"quoted\\" plan"', []),
    ],
)
def test_filter_selects_the_documented_entitlements(text: str, expected: list[str]) -> None:
    """Each documented operator, connective and spelling selects the right entitlements."""
    assert matching(text) == expected


def test_or_binds_tighter_than_and() -> None:
    """`a AND b OR c` is `a AND (b OR c)`, as in Google's filtering convention."""
    assert matching("plan=pro AND plan=basic OR account=5678") == ["beta"]
    assert matching("(plan=pro AND plan=basic) OR account=5678") == ["beta"]
    assert matching("plan=basic AND state=active OR plan=pro") == ["alpha"]


def test_quoted_values_keep_spaces_and_escapes() -> None:
    """A quoted value may hold spaces, operators and escaped quotes."""
    fields = {"plan": ['my "big" plan: x=1']}
    assert parse_filter('plan="my \\"big\\" plan: x=1"').matches(fields)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plan", "expected '=', '!=' or ':'"),
        ("plan=", "expected a value"),
        ("=basic", "expected an attribute name"),
        ("colour=red", "unknown attribute 'colour'"),
        ("consumers.project=projects/1", "supports only ':'"),
        ("change_history.new_offer!=x", "supports only ':'"),
        ("plan:basic", "only to repeated fields"),
        ("state=dormant", "unknown entitlement state"),
        ('plan="basic', "unterminated quoted string"),
        ("(plan=basic", "expected ')'"),
        ("plan=basic)", "unexpected ')'"),
        ("plan=basic AND", "at the end of the filter"),
        ("plan!basic", "must be followed by '='"),
        ("NOT", "at the end of the filter"),
        ("OR plan=basic", "expected an attribute name"),
    ],
)
def test_malformed_filter_names_the_problem(text: str, problem: str) -> None:
    """A malformed filter raises FilterError with a message naming what is wrong."""
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert problem in str(caught.value)
