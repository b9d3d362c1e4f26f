"""`accounts list|show|approve|reject|reset`: our account records, and the operator's calls."""

from __future__ import annotations

import argparse
from typing import Any

from marketplace_saas.entrypoints.cli._common import (
    OPERATOR,
    SYNC_HINT,
    NotFound,
    bare_id,
    decision_command,
    open_container,
)
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit

COLUMNS = [
    ("ACCOUNT", "id"),
    ("STATE", "state"),
    ("SIGNUP", "signupApproval"),
    ("CUSTOMER", "customerId"),
    ("SIGNED UP", "signedUpAt"),
    ("DELETED", "deletedAt"),
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("accounts", help="procurement accounts")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="accounts in the database")
    add_json_flag(listing)
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="one account, with its entitlements")
    show.add_argument("account_id")
    add_json_flag(show)
    show.set_defaults(run=run_show)

    approve = commands.add_parser("approve", help="approve the account's sign-up (Google call)")
    approve.add_argument("account_id")
    add_json_flag(approve)
    approve.set_defaults(run=run_approve)

    reject = commands.add_parser("reject", help="reject the account's sign-up (Google call)")
    reject.add_argument("account_id")
    reject.add_argument("--reason", required=True, help="shown to the customer (<= 256 bytes)")
    add_json_flag(reject)
    reject.set_defaults(run=run_reject)

    reset = commands.add_parser(
        "reset", help="reset a test account to pending sign-up, cancelling its entitlements"
    )
    reset.add_argument("account_id")
    add_json_flag(reset)
    reset.set_defaults(run=run_reset)


def run_list(args: argparse.Namespace) -> int:
    with open_container() as container, container.console() as reads:
        rows = reads.api_accounts()
    emit(args, rows, columns=COLUMNS)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_container() as container, container.console() as reads:
        record = reads.api_account(bare_id(args.account_id))
    if record is None:
        raise NotFound(f"account {args.account_id}", hint=SYNC_HINT)
    emit(args, record)
    return 0


def _decided(args: argparse.Namespace, container: Any, result: Any) -> int:
    """Print the decision's outcome and the account as recorded after it."""
    with container.console() as reads:
        record = reads.api_account(result.resource_id)
    data = {**(record or {"id": result.resource_id}), "outcome": result.outcome}
    message = f"{result.outcome}: account {result.resource_id} (sign-up {result.state or '-'})"
    emit(args, data, message=None if args.json else message)
    return 0


run_approve = decision_command(
    "account_id", lambda ap, c, a, _: ap.approve_account(c, a, actor=OPERATOR), _decided
)
run_reject = decision_command(
    "account_id",
    lambda ap, c, a, args: ap.reject_account(c, a, actor=OPERATOR, reason=args.reason),
    _decided,
)
run_reset = decision_command(
    "account_id", lambda ap, c, a, _: ap.reset_account(c, a, actor=OPERATOR), _decided
)
