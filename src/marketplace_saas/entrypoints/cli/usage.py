"""`usage show ENTITLEMENT`, `usage pending` and `report-usage [--once] [--dry-run] [--now TIME]`.

`report-usage` exits 1 when any window was rejected or is left to retry; it refuses a `--now` later
than the clock (an hour that has not ended would be closed and sent) unless `--allow-future`; its
progress goes to stderr (a bar on a terminal, a line per tenth otherwise). A run that finds
another run reporting says so on stderr, sends nothing and exits 0: nothing of its own failed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from typing import Any, TextIO

from marketplace_saas.domain.usage import next_report_at
from marketplace_saas.entrypoints.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    SYNC_HINT,
    CliError,
    NotFound,
    bare_id,
    open_container,
    stop_on_signals,
)
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit, print_json, print_table

WINDOW_COLUMNS = [
    ("START", "start"),
    ("END", "end"),
    ("PLAN", "plan"),
    ("INGESTED", "ingested_text"),
    ("REPORTED", "reported_text"),
    ("STATUS", "status"),
    ("ERROR", "error"),
]
PENDING_COLUMNS = [
    ("ENTITLEMENT", "entitlement"),
    ("START", "start"),
    ("END", "end"),
    ("PLAN", "plan"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("ERROR", "error"),
]


def register(subparsers: Any) -> None:
    usage = subparsers.add_parser("usage", help="ingested and reported usage")
    commands = usage.add_subparsers(dest="usage_command", metavar="COMMAND", required=True)
    show = commands.add_parser("show", help="per hour: ingested, reported, status")
    show.add_argument("entitlement", metavar="ENTITLEMENT")
    add_json_flag(show)
    show.set_defaults(run=run_show)
    pending = commands.add_parser("pending", help="windows and records not reported yet")
    add_json_flag(pending)
    pending.set_defaults(run=run_pending)

    report = subparsers.add_parser("report-usage", help="send every due usage report")
    report.add_argument("--once", action="store_true", help="one run, then exit (for cron)")
    report.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; change nothing"
    )
    report.add_argument("--now", metavar="TIME", help="the reporter's current time (RFC 3339)")
    report.add_argument(
        "--allow-future",
        action="store_true",
        help="accept a --now later than the clock (tests: it closes hours not yet ended)",
    )
    add_json_flag(report)
    report.set_defaults(run=run_report)


def _pairs(values: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"


def run_show(args: argparse.Namespace) -> int:
    from marketplace_saas.service.metering.history import usage_history

    entitlement = bare_id(args.entitlement)
    with open_container() as container:
        windows = usage_history(container, entitlement)
        if not windows:
            with container.console() as reads:
                if reads.entitlement(entitlement) is None:
                    raise NotFound(f"entitlement {args.entitlement}", hint=SYNC_HINT)
    if args.json:
        print_json({"entitlement": entitlement, "windows": windows})
        return 0
    rows = [
        {**w, "ingested_text": _pairs(w["ingested"]), "reported_text": _pairs(w["reported"])}
        for w in windows
    ]
    print_table(rows, WINDOW_COLUMNS)
    return 0


def run_pending(args: argparse.Namespace) -> int:
    from marketplace_saas.service.metering.history import pending_usage

    with open_container() as container:
        pending = pending_usage(container)
    if args.json:
        print_json(pending)
        return 0
    print("Windows not yet accepted:")
    print_table(pending["windows"], PENDING_COLUMNS)
    print("\nRecords not yet in a reported window:")
    print_table(
        pending["unreported_records"],
        [("ENTITLEMENT", "entitlement"), ("RECORDS", "records"), ("OLDEST", "oldest_window")],
    )
    return 0


class Progress:
    """A bar on a terminal; otherwise a plain line at every tenth of the way."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if total == 0:
            return
        if self.tty:
            filled = int(30 * done / total)
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\rreport-usage [{bar}] {done}/{total} windows")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
            return
        tenth = 10 * done // total
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self.stream.write(f"report-usage: {done}/{total} windows\n")
            self.stream.flush()


def _parse_now(text: str | None, *, allow_future: bool) -> datetime | None:
    if text is None:
        return None
    from marketplace_saas.domain.time import parse_rfc3339

    try:
        now = parse_rfc3339(text)
    except ValueError as exc:
        raise CliError(f"--now: {exc}", EXIT_CONFIG) from None
    clock = datetime.now(now.tzinfo)
    if now > clock and not allow_future:
        raise CliError(
            f"--now {text} is later than the clock ({clock.isoformat(timespec='seconds')}): "
            "it would close and send hours that have not ended; "
            "give --allow-future if that is what you mean (tests)",
            EXIT_CONFIG,
        )
    return now


def run_report(args: argparse.Namespace) -> int:
    from marketplace_saas.service.metering.report import report_usage

    now = _parse_now(args.now, allow_future=args.allow_future)
    if args.now and not args.once:
        raise CliError("--now needs --once (a fixed time cannot repeat hourly)", EXIT_CONFIG)
    stop = None if args.once or args.dry_run else stop_on_signals()
    with open_container() as container:
        while True:
            summary = report_usage(
                container, now=now, dry_run=args.dry_run, progress=Progress(sys.stderr)
            )
            _print_summary(args, summary.to_json(), dry_run=args.dry_run)
            if stop is None:
                return EXIT_FAILURE if summary.failed and not args.dry_run else 0
            if stop.wait(_seconds_to_next_run(container.now(), container.settings)):
                return 0


def _seconds_to_next_run(now: datetime, settings: Any) -> float:
    due = next_report_at(now, timedelta(seconds=settings.usage_grace_seconds))
    return max(1.0, (due - now).total_seconds())


def _print_summary(args: argparse.Namespace, data: dict[str, Any], *, dry_run: bool) -> None:
    if args.json:
        print_json(data)
        for error in data.get("errors", []):
            if "entitlement" not in error:  # about the run (another run is reporting)
                print(f"report-usage: {error['error']}", file=sys.stderr)
        return
    if dry_run:
        for operation in data.get("operations", []):
            print_json(operation)
        print(f"dry run: {len(data.get('operations', []))} operation(s) would be sent")
        return
    keys = ["closed", "skipped", "accepted", "rejected", "retrying", "carried", "stranded"]
    emit(args, {k: data[k] for k in keys} | {"now": data["now"]})
    for error in data["errors"]:
        if "entitlement" not in error:  # about the run, not a window
            print(f"report-usage: {error['error']}", file=sys.stderr)
            continue
        print(
            f"  {error['entitlement']} {error['window_start']}: {error['error']}", file=sys.stderr
        )
