"""`entitlements list|show|approve|reject|approve-plan-change|reject-plan-change|suspend|message`.

`list` and `show` read our database; the other actions call Google through `service.approvals`
(which re-reads the entitlement first and records the result and an audit row).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from marketplace_saas.domain.offers import OfferTerms
from marketplace_saas.entrypoints.cli._common import (
    OPERATOR,
    SYNC_HINT,
    Decide,
    NotFound,
    bare_id,
    decision_command,
    open_container,
)
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit, print_record

COLUMNS = [
    ("ENTITLEMENT", "id"),
    ("ACCOUNT", "account"),
    ("PRODUCT", "product"),
    ("PLAN", "plan"),
    ("PENDING PLAN", "newPendingPlan"),
    ("STATE", "state"),
    ("SERVICE", "serviceEnabled"),
    ("CUSTOMER", "customerId"),
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("entitlements", help="entitlements (orders)")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="entitlements in the database")
    listing.add_argument("--state", help="e.g. active, ENTITLEMENT_ACTIVATION_REQUESTED")
    listing.add_argument("--account", help="an account id")
    listing.add_argument("--product")
    add_json_flag(listing)
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="one entitlement, with the API's field names")
    show.add_argument("entitlement_id")
    add_json_flag(show)
    show.set_defaults(run=run_show)

    def action(name: str, help_text: str, *, reason: bool = False) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        sub.add_argument("entitlement_id")
        if reason:
            sub.add_argument("--reason", required=True, help="shown to the customer")
        add_json_flag(sub)
        return sub

    action("approve", "approve a requested entitlement").set_defaults(run=run_approve)
    action("reject", "reject a requested entitlement", reason=True).set_defaults(run=run_reject)
    action("approve-plan-change", "approve the pending plan change").set_defaults(
        run=run_approve_plan_change
    )
    action("reject-plan-change", "reject the pending plan change", reason=True).set_defaults(
        run=run_reject_plan_change
    )
    action("suspend", "suspend (Google: not yet supported)", reason=True).set_defaults(
        run=run_suspend
    )
    message = action("message", "set the message shown to the customer while pending")
    message.add_argument("text", help="the message (cleared by Google on the next state change)")
    message.set_defaults(run=run_message)


def run_list(args: argparse.Namespace) -> int:
    with open_container() as container, container.console() as reads:
        rows = reads.api_entitlements(state=args.state, account=args.account, product=args.product)
    table = [{**row, "account": row.get("account", "").rsplit("/", 1)[-1]} for row in rows]
    emit(args, rows if args.json else table, columns=COLUMNS)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_container() as container, container.console() as reads:
        record = reads.api_entitlement(bare_id(args.entitlement_id))
    if record is None:
        raise NotFound(f"entitlement {args.entitlement_id}", hint=SYNC_HINT)
    if args.json:
        emit(args, record)
        return 0
    terms = OfferTerms(**record.pop("offerTerms"))
    print_record(record)
    print("\nOffer terms")
    print_record(dict(terms.lines()))
    return 0


def _done(args: argparse.Namespace, container: Any, result: Any) -> int:
    """Print the decision's outcome and the entitlement as recorded after it."""
    with container.console() as reads:
        record = reads.api_entitlement(result.resource_id)
    data = {**(record or {"id": result.resource_id}), "outcome": result.outcome}
    message = f"{result.outcome}: entitlement {result.resource_id} is {result.state or 'gone'}"
    emit(args, data, message=None if args.json else message)
    return 0


def _decision(decide: Decide) -> Callable[[argparse.Namespace], int]:
    return decision_command("entitlement_id", decide, _done)


run_approve = _decision(lambda ap, c, e, a: ap.approve_entitlement(c, e, actor=OPERATOR))
run_reject = _decision(
    lambda ap, c, e, a: ap.reject_entitlement(c, e, actor=OPERATOR, reason=a.reason)
)
run_approve_plan_change = _decision(
    lambda ap, c, e, a: ap.approve_plan_change(c, e, actor=OPERATOR)
)
run_reject_plan_change = _decision(
    lambda ap, c, e, a: ap.reject_plan_change(c, e, actor=OPERATOR, reason=a.reason)
)
run_suspend = _decision(
    lambda ap, c, e, a: ap.suspend_entitlement(c, e, actor=OPERATOR, reason=a.reason)
)
run_message = _decision(
    lambda ap, c, e, a: ap.set_message_to_user(c, e, actor=OPERATOR, message=a.text)
)
