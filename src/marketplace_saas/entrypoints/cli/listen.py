"""`listen [--print]`: the listener alone, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from marketplace_saas.entrypoints.cli._common import (
    CliError,
    load_settings,
    open_container,
    stop_on_signals,
)
from marketplace_saas.entrypoints.listener import (
    Listener,
    ListenerError,
    printing_callback,
    processing_callback,
)


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
    stop = stop_on_signals()
    settings = load_settings()
    if args.print_only:
        listener = Listener(settings, printing_callback())
        return _listen(listener, stop)
    with open_container(settings) as container:
        return _listen(Listener(settings, processing_callback(container)), stop)


def _listen(listener: Listener, stop: Any) -> int:
    print(f"listening on {listener.subscription} (Ctrl-C to stop)", file=sys.stderr)
    listener.start()
    try:
        listener.wait(stop)
    except ListenerError as exc:
        raise CliError(str(exc)) from exc
    finally:
        listener.stop()
    return 0
