"""`sync [--confirm-deletions]`: reconcile every account and entitlement from the Procurement API.

Exit code 1 when some resource could not be reconciled (listed under `errors`); 2 when the
mass-deletion guard stopped the sync before it changed anything (`blocked` says why): check,
then run again with `--confirm-deletions` if the customers really left.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from marketplace_saas.entrypoints.cli._common import OPERATOR, open_container
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit

EXIT_BLOCKED = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync", help="page through every account and entitlement and repair the database"
    )
    parser.add_argument(
        "--confirm-deletions",
        action="store_true",
        help="mark deleted whatever Google no longer knows, even more than the guard allows",
    )
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from marketplace_saas.service.procurement.reconcile import sync_all

    with open_container() as container:
        result = sync_all(container, actor=OPERATOR, confirm_deletions=args.confirm_deletions)
    data: Any = dataclasses.asdict(result)
    emit(args, data)
    if result.blocked:
        print(f"error: {result.blocked}", file=sys.stderr)
        return EXIT_BLOCKED
    return 1 if result.errors else 0
