"""`sync`: reconcile every account and entitlement from the Procurement API.

Exit code 1 when some resource could not be reconciled (listed under `errors`).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from marketplace_saas.entrypoints.cli._common import OPERATOR, open_container
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync", help="page through every account and entitlement and repair the database"
    )
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from marketplace_saas.service.procurement.reconcile import sync_all

    with open_container() as container:
        result = sync_all(container, actor=OPERATOR)
    data: Any = (
        dataclasses.asdict(result)
        if dataclasses.is_dataclass(result) and not isinstance(result, type)
        else {"result": result}
    )
    emit(args, data)
    return 1 if data.get("errors") else 0
