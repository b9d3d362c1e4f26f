"""`doctor [--json] [--push]`: the go-live check (`entrypoints.golive`), read-only.

One line per check, `PASS` or `FAIL` with the fix; exit code 1 when any check fails. `--push`
says notifications arrive by push (`serve --no-listener`, Cloud Run) even when the subscription
itself is a pull subscription; a push subscription is recognised without it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from marketplace_saas.entrypoints.cli._common import EXIT_FAILURE, EXIT_OK
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit

if TYPE_CHECKING:
    from marketplace_saas.entrypoints.golive import Check


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="go-live check: settings, credentials, APIs")
    add_json_flag(parser)
    parser.add_argument(
        "--push", action="store_true", help="notifications are pushed to /pubsub/push"
    )
    parser.set_defaults(run=run)


def line(check: Check) -> str:
    text = f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}"
    return text if check.ok else f"{text}\n      fix: {check.fix}"


def run(args: argparse.Namespace) -> int:
    from marketplace_saas.entrypoints.golive import Doctor  # not loaded by the other commands

    checks = Doctor(pushed=args.push).run()
    ok = all(check.ok for check in checks)
    data = {"ok": ok, "checks": [check.to_json() for check in checks]}
    summary = "ready to go live" if ok else f"{sum(not c.ok for c in checks)} check(s) failed"
    emit(args, data, message="\n".join([*map(line, checks), summary]))
    return EXIT_OK if ok else EXIT_FAILURE
