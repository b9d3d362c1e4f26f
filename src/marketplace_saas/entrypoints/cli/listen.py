"""`listen [--print]`: the listener alone, until SIGINT or SIGTERM."""

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

if TYPE_CHECKING:
    from marketplace_saas.entrypoints.listener import Listener

# Google's Pub/Sub client (grpc, ~0.8 s to import) loads only when this command runs.


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("listen", help="receive notifications by streaming pull")
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
        return _listen(Listener(settings, processing_callback(container)), stop)


def _listen(listener: Listener, stop: Any) -> int:
    from marketplace_saas.entrypoints.listener import ListenerError

    print(f"listening on {listener.subscription} (Ctrl-C to stop)", file=sys.stderr)
    listener.start()
    try:
        listener.wait(stop)
    except ListenerError as exc:
        raise CliError(str(exc)) from exc
    finally:
        listener.stop()
    return 0
