"""`events list|show|replay`: the inbox of raw notifications, and replaying a parked one."""

from __future__ import annotations

import argparse
from typing import Any

from marketplace_saas.entrypoints.cli._common import NotFound, open_container
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit

COLUMNS = [
    ("EVENT", "eventId"),
    ("TYPE", "eventType"),
    ("SUBJECT", "subject"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("RECEIVED", "receivedAt"),
    ("ERROR", "error"),
]
STATUSES = ["received", "processed", "ignored", "invalid", "retrying", "parked"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("events", help="received notifications (the inbox)")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="the most recent notifications first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--type", dest="event_type", help="an eventType")
    listing.add_argument("--limit", type=int, default=50)
    add_json_flag(listing)
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="one notification, with its payload and error")
    show.add_argument("event_id")
    add_json_flag(show)
    show.set_defaults(run=run_show)

    replay = commands.add_parser("replay", help="process a stored notification again")
    replay.add_argument("event_id")
    add_json_flag(replay)
    replay.set_defaults(run=run_replay)


def run_list(args: argparse.Namespace) -> int:
    with open_container() as container, container.console() as reads:
        rows = reads.api_events(status=args.status, event_type=args.event_type, limit=args.limit)
    emit(args, rows, columns=COLUMNS)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_container() as container, container.console() as reads:
        record = reads.api_event(args.event_id)
    if record is None:
        raise NotFound(f"event {args.event_id}")
    emit(args, record)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from marketplace_saas.service.procurement.inbox import replay

    with open_container() as container:
        with container.console() as reads:
            if reads.api_event(args.event_id) is None:
                raise NotFound(f"event {args.event_id}")
        replay(container, args.event_id)
        with container.console() as reads:
            record = reads.api_event(args.event_id)
    assert record is not None
    emit(
        args,
        record,
        message=None if args.json else f"replayed {args.event_id}: {record['status']}",
    )
    return 0 if record["status"] in {"processed", "ignored"} else 1
