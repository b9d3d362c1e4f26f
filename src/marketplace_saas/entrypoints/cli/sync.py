"""`sync [--confirm-deletions]`: reconcile every account and entitlement from the Procurement API.

Exit code 1 when some resource could not be reconciled (listed under `errors`); 2 when the
mass-deletion guard stopped the sync before it changed anything (`blocked` says why): check,
then run again with `--confirm-deletions` if the customers really left. On a terminal, stderr
shows how many accounts and entitlements were listed so far (a line redrawn in place, as
`report-usage` does); piped, nothing is added.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

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


class ListingProgress:
    """Wraps the Procurement gateway: counts what `list_accounts` and `list_entitlements` yield
    and redraws one line on `stream` (at most ten times a second)."""

    def __init__(self, gateway: Any, stream: TextIO) -> None:
        self._gateway = gateway
        self._stream = stream
        self.counts = {"accounts": 0, "entitlements": 0}
        self._drawn = 0.0
        self._started = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)

    def list_accounts(self) -> Iterator[dict[str, Any]]:
        return self._counted("accounts", self._gateway.list_accounts())

    def list_entitlements(self, filter: str | None = None) -> Iterator[dict[str, Any]]:
        return self._counted("entitlements", self._gateway.list_entitlements(filter))

    def _counted(self, kind: str, items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            self.counts[kind] += 1
            self.draw()
            yield item
        self.draw(force=True)

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        seconds = now - self._started
        self._stream.write(
            f"\rsync: listed {self.counts['accounts']:,} accounts, "
            f"{self.counts['entitlements']:,} entitlements ({seconds:.0f} s)"
        )
        self._stream.flush()

    def done(self) -> None:
        self.draw(force=True)
        self._stream.write("\n")
        self._stream.flush()


def run(args: argparse.Namespace) -> int:
    from marketplace_saas.service.procurement.reconcile import sync_all

    progress: ListingProgress | None = None

    def on_terminal(gateway: Any) -> Any:
        nonlocal progress
        if not sys.stderr.isatty():
            return gateway
        progress = ListingProgress(gateway, sys.stderr)
        return progress

    with open_container(wrap_procurement=on_terminal) as container:
        try:
            result = sync_all(container, actor=OPERATOR, confirm_deletions=args.confirm_deletions)
        finally:
            if progress is not None:
                progress.done()
    data: Any = dataclasses.asdict(result)
    emit(args, data)
    if result.blocked:
        print(f"error: {result.blocked}", file=sys.stderr)
        return EXIT_BLOCKED
    return 1 if result.errors else 0
