"""`hooks list|show|retry|discard|run`: the provisioning-hook outbox, and its dispatcher alone."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from marketplace_saas.entrypoints.cli._common import (
    EXIT_CONFIG,
    OPERATOR,
    CliError,
    NotFound,
    open_container,
    stop_on_signals,
)
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit
from marketplace_saas.service.hooks import admin as hooks_admin

COLUMNS = [
    ("ID", "id"),
    ("HOOK", "hook"),
    ("KEY", "orderingKey"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("NEXT ATTEMPT", "nextAttemptAt"),
    ("BLOCKED BY", "blockedBy"),
    ("ERROR", "lastError"),
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("hooks", help="provisioning hooks (the outbox) and delivery")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="outbox items, newest first")
    listing.add_argument("--status", choices=hooks_admin.STATUSES)
    listing.add_argument("--hook", help="a hook name, e.g. entitlement.active")
    listing.add_argument("--key", help="an ordering key (entitlement or account id)")
    listing.add_argument("--limit", type=int, default=50)
    add_json_flag(listing)
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="one item, with its payload and last error")
    show.add_argument("id", type=int)
    add_json_flag(show)
    show.set_defaults(run=run_show)

    retry = commands.add_parser("retry", help="deliver dead (or skipped) items again")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?", help="the item's id")
    which.add_argument("--all-dead", action="store_true", help="every dead item")
    add_json_flag(retry)
    retry.set_defaults(run=run_retry)

    discard = commands.add_parser(
        "discard", help="give up on a dead item so the later items of its key proceed"
    )
    discard.add_argument("id", type=int)
    discard.add_argument("--reason", required=True)
    add_json_flag(discard)
    discard.set_defaults(run=run_discard)

    run = commands.add_parser("run", help="the dispatcher alone, until SIGINT or SIGTERM")
    run.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    run.add_argument("--concurrency", type=int, default=4, help="deliveries in parallel")
    run.set_defaults(run=run_dispatcher)


@contextlib.contextmanager
def _errors(item_id: int) -> Iterator[None]:
    """An unknown item is `NotFound`; an item in the wrong state, a `CliError` saying which."""
    try:
        yield
    except hooks_admin.HookNotFound as exc:
        raise NotFound(f"hook {item_id}") from exc
    except hooks_admin.HookStateError as exc:
        raise CliError(str(exc)) from exc


def run_list(args: argparse.Namespace) -> int:
    with open_container() as container, container.reading() as uow:
        items = hooks_admin.list_items(
            uow, status=args.status, hook=args.hook, ordering_key=args.key, limit=args.limit
        )
    rows = [item.as_dict() for item in items]
    if not args.json:
        for row in rows:
            row.pop("payload")
    emit(args, rows, columns=COLUMNS)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_container() as container, container.reading() as uow, _errors(args.id):
        item = hooks_admin.get_item(uow, args.id)
    emit(args, item.as_dict())
    return 0


def run_retry(args: argparse.Namespace) -> int:
    with open_container() as container, container.unit_of_work() as uow:
        if args.all_dead:
            ids = hooks_admin.retry_all_dead(uow, now=container.now())
            emit(args, {"retried": ids}, message=f"{len(ids)} dead hook(s) queued again")
            return 0
        with _errors(args.id):
            item = hooks_admin.retry(uow, args.id, now=container.now())
    emit(args, item.as_dict(), message=f"hook {item.id} ({item.hook}) queued again")
    return 0


def run_discard(args: argparse.Namespace) -> int:
    reason = f"{args.reason} ({OPERATOR})"
    with open_container() as container, container.unit_of_work() as uow, _errors(args.id):
        item = hooks_admin.discard(uow, args.id, reason=reason)
    emit(args, item.as_dict(), message=f"hook {item.id} ({item.hook}) discarded")
    return 0


def run_dispatcher(args: argparse.Namespace) -> int:
    from marketplace_saas.service.hooks.dispatch import build_dispatcher  # httpx, the lifecycle

    stop = stop_on_signals()
    with open_container() as container:
        dispatcher = build_dispatcher(container, concurrency=args.concurrency)
        if dispatcher is None:
            raise CliError("no hook receivers: set HOOK_RECEIVERS (see docs/hooks.md)", EXIT_CONFIG)
        if args.once:
            result = dispatcher.drain()
            print(
                f"delivered {len(result.delivered)}, failed {len(result.failed)}, "
                f"dead {len(result.dead)}, skipped {len(result.skipped)}"
            )
            return 0 if not (result.failed or result.dead) else 1
        dispatcher.run_forever(stop)
    return 0
