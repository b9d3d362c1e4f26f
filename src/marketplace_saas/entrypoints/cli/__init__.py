"""`marketplace-saas`: the backend's command line.

    main(argv) -> exit code

The parser is built from the modules in `COMMAND_MODULES`; each module under
`entrypoints/cli/` exposes `register(subparsers)` and sets `run=` on its parsers (a function of
the parsed arguments returning an exit code). Errors end as one line on stderr and a non-zero
exit: 1 for a refusal or an unknown id, 2 for bad usage or configuration, 75 when Google is
unavailable (try again later).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from marketplace_saas.adapters.credentials import CredentialsError
from marketplace_saas.adapters.procurement_errors import (
    ProcurementError,
    TransientProcurementError,
)
from marketplace_saas.config import ConfigurationError
from marketplace_saas.domain.errors import MarketplaceError, ResourceNotFound
from marketplace_saas.entrypoints.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_TEMPFAIL,
    CliError,
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
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ResourceNotFound as exc:
        print(f"error: not found: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except MarketplaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except CredentialsError as exc:
        print(f"error: credentials: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (ConfigurationError, ValidationError) as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except TransientProcurementError as exc:
        print(f"error: the Procurement API is unavailable, try again later: {exc}", file=sys.stderr)
        return EXIT_TEMPFAIL
    except ProcurementError as exc:
        print(f"error: Google refused: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
