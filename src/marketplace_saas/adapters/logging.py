"""Structured logs with structlog: one line per event, `account_id` / `entitlement_id` bound.

`configure_logging()` is called once by the entrypoints (`serve`, `listen`, the CLI); tests leave
structlog's defaults and read logs with `structlog.testing.capture_logs()`. Services bind the
subject on the logger they use (`get_logger(__name__).bind(entitlement_id=...)`), so the fields
reach every processor, including the test capture.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(*, level: str = "INFO", json: bool = False) -> None:
    """Console lines for people, JSON lines for machines (`json=True`)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )


def get_logger(name: str, **bound: Any) -> Any:
    """A structlog logger named `name`, with `bound` fields on every line."""
    return structlog.get_logger(name).bind(logger=name, **bound)
