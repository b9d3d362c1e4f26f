"""What every command shares: errors, exit codes, the container, logging, signals."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import structlog

from marketplace_saas.adapters.logging import configure_logging

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container
    from marketplace_saas.config import Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_TEMPFAIL = 75
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool cut off by `head`

OPERATOR = "operator:cli"
LONG_RUNNING = {"serve", "listen"}


class CliError(Exception):
    """A clear message for stderr, and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


SYNC_HINT = "not in the database; if Google has it, `marketplace-saas sync` records it"


class NotFound(CliError):
    def __init__(self, what: str, *, hint: str | None = None) -> None:
        super().__init__(f"{what} not found" + (f" ({hint})" if hint else ""))


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (tests swap it between runs)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(args: argparse.Namespace) -> None:
    """Log lines on stderr (stdout is for data): INFO for serve/listen, WARNING otherwise."""
    default = "INFO" if args.command in LONG_RUNNING else "WARNING"
    level = args.log_level or os.environ.get("LOG_LEVEL") or default
    configure_logging(level=level, json=os.environ.get("LOG_FORMAT") == "json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(_Stderr()))  # type: ignore[arg-type]
    # One line per HTTP request (the sandbox emulator pushing notifications) is noise.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


def load_settings() -> Settings:
    """The settings from the environment; in the sandbox, aimed at the sandbox's emulator."""
    from marketplace_saas.config import Settings

    settings = Settings()
    if settings.sandbox and not settings.procurement_api_endpoint:
        from marketplace_saas.entrypoints.sandbox import client_settings

        settings = client_settings(settings)
    return settings


@contextmanager
def open_container(
    settings: Settings | None = None, *, wrap_procurement: Callable[[Any], Any] | None = None
) -> Iterator[Container]:
    """The container for a command: bootstrap(), with the Google API calls measured (and the
    Procurement gateway wrapped by `wrap_procurement`, e.g. to show a listing's progress)."""
    from marketplace_saas.adapters.db.engine import check_database

    settings = settings or load_settings()
    check_database(settings.database_url)
    from marketplace_saas.bootstrap import bootstrap  # after the checks: a second of imports

    container = bootstrap(settings, instrument=True)
    if wrap_procurement is not None:
        container.procurement = wrap_procurement(container.procurement)
    try:
        yield container
    finally:
        container.close()


def quiet_broken_pipe() -> int:
    """The reader of stdout went away (`... | head`): stop quietly, as a Unix tool does.

    stdout is pointed at /dev/null so that the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (installed in the main thread)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def bare_id(value: str) -> str:
    """An account or entitlement id given bare or as a resource name (`providers/p/.../ID`)."""
    return value.rsplit("/", 1)[-1]


Decide = Callable[[ModuleType, Any, str, argparse.Namespace], Any]
Report = Callable[[argparse.Namespace, Any, Any], int]


def decision_command(
    id_arg: str, decide: Decide, report: Report
) -> Callable[[argparse.Namespace], int]:
    """A command that takes one decision through `service.procurement.decisions` on the
    resource named by `args.<id_arg>`, then prints its outcome with
    `report(args, container, result)`."""

    def run(args: argparse.Namespace) -> int:
        from marketplace_saas.service.procurement import decisions

        resource_id = bare_id(getattr(args, id_arg))
        with open_container() as container:
            return report(args, container, decide(decisions, container, resource_id, args))

    return run
