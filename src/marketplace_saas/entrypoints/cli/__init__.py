"""`marketplace-saas`: the backend's command line.

    main(argv) -> exit code

The parser is built from the modules in `COMMAND_MODULES`; each module under
`entrypoints/cli/` exposes `register(subparsers)` and sets `run=` on its parsers (a function of
the parsed arguments returning an exit code). Errors end as one line on stderr and a non-zero
exit: 1 for a refusal or an unknown id, 2 for bad usage or configuration, 75 when Google is
unavailable (try again later). `--debug` adds the traceback behind the line.

Building the parser imports every command module, so those import only the standard library and
light modules at the top; what one command needs (SQLAlchemy through `open_container`, Alembic,
uvicorn, the web app, Google's clients) is imported inside its `run`, after its settings are
checked: `--help` and a configuration error start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from marketplace_saas.domain.errors import MarketplaceError, ResourceNotFound
from marketplace_saas.entrypoints.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_TEMPFAIL,
    CliError,
    quiet_broken_pipe,
    setup_logging,
)

COMMAND_MODULES = [
    "serve",
    "listen",
    "pubsub",
    "sync",
    "accounts",
    "entitlements",
    "events",
    "db",
    "hooks",
    "usage",
    "admin",
    "doctor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketplace-saas",
        description="A SaaS provider's backend for Google Cloud Marketplace.",
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (default: INFO for serve/listen)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback behind an error message"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"marketplace_saas.entrypoints.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already explained by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    setup_logging(args)
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return quiet_broken_pipe()
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise
        message, code = explained
        if args.debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return code


def explain(exc: Exception) -> tuple[str, int] | None:
    """The one line and exit code for an error a user can act on; None for a bug."""
    # Imported here, not at the top: `--help` and the light commands start without pydantic,
    # the settings and google-auth (a command that raised one of these has loaded them anyway).
    from google.auth.exceptions import DefaultCredentialsError
    from pydantic import ValidationError

    from marketplace_saas.adapters.credentials import CredentialsError
    from marketplace_saas.adapters.procurement_errors import (
        ProcurementError,
        TransientProcurementError,
    )
    from marketplace_saas.config import ConfigurationError, describe_invalid

    if isinstance(exc, CliError):
        return str(exc), exc.exit_code
    if isinstance(exc, ResourceNotFound):
        return f"not found: {exc}", EXIT_FAILURE
    if isinstance(exc, MarketplaceError):
        return str(exc), EXIT_FAILURE
    if isinstance(exc, CredentialsError):
        return f"credentials: {exc}", EXIT_CONFIG
    if isinstance(exc, ConfigurationError):
        return f"configuration: {exc}", EXIT_CONFIG
    if isinstance(exc, ValidationError):
        return f"configuration: {describe_invalid(exc)}", EXIT_CONFIG
    if isinstance(exc, DefaultCredentialsError):
        return f"configuration: GOOGLE_APPLICATION_CREDENTIALS: {exc}", EXIT_CONFIG
    if isinstance(exc, TransientProcurementError):
        return f"the Procurement API is unavailable, try again later: {exc}", EXIT_TEMPFAIL
    if isinstance(exc, ProcurementError):
        return f"Google refused: {exc}", EXIT_FAILURE
    return None
