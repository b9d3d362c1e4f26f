"""`listen [--print]`: the listener alone, until SIGINT or SIGTERM.

Like `serve`, the listener reconciles at start and every SYNC_INTERVAL_SECONDS (the `sync` job
of `entrypoints/jobs.py`, in its own thread, started once the pull is): whatever
happened while no listener ran (a crash, messages lost) is repaired, and what still waits for a
decision our policies take gets it. `--print` only prints.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from marketplace_saas.entrypoints.cli._common import (
    CliError,
    load_settings,
    open_container,
    stop_on_signals,
)
from marketplace_saas.entrypoints.jobs import inbox_job, sync_job
from marketplace_saas.entrypoints.scheduler import Scheduler

if TYPE_CHECKING:
    from marketplace_saas.entrypoints.listener import Listener

# Google's Pub/Sub client (grpc, ~0.8 s to import) loads only when this command runs.


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("listen", help="receive notifications by pull")
    parser.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print each notification and acknowledge nothing (codelab step 1)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from marketplace_saas.entrypoints.listener import (
        Listener,
        printing_callback,
        processing_callback,
    )

    stop = stop_on_signals()
    settings = load_settings()
    if args.print_only:
        listener = Listener(settings, printing_callback())
        return _listen(listener, stop)
    with open_container(settings) as container:
        scheduler = Scheduler(container, [sync_job(settings), inbox_job()])
        return _listen(Listener(settings, processing_callback(container)), stop, scheduler)


def _listen(listener: Listener, stop: Any, scheduler: Scheduler | None = None) -> int:
    from marketplace_saas.entrypoints.listener import ListenerError

    print(f"listening on {listener.subscription} (Ctrl-C to stop)", file=sys.stderr)
    listener.start()
    if scheduler is not None:
        scheduler.start()
    try:
        listener.wait(stop)
    except ListenerError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if scheduler is not None:
            scheduler.stop()
        listener.stop()
    return 0
