"""What `marketplace-saas` loads before it knows the command: its parser only, so `--help` and a
configuration error start without the database, web and Google libraries (entrypoints/cli)."""

from __future__ import annotations

import json
import subprocess
import sys

# Each costs a large share of a second or more to import; only the commands that use them do.
HEAVY = (
    "alembic",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    "pydantic",
    "google.auth",
    "google.cloud.pubsub_v1",
    "googleapiclient",
    "httpx",
)

PROBE = f"""
import json, sys
from marketplace_saas.entrypoints.cli import build_parser
build_parser().format_help()
print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))
"""


def test_building_the_parser_loads_none_of_the_heavy_libraries() -> None:
    """In a fresh interpreter: every command registered, none of HEAVY imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_help_lists_every_command() -> None:
    """The lazy imports keep every command in `--help`."""
    done = subprocess.run(
        [sys.executable, "-m", "marketplace_saas.entrypoints.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for command in ("serve", "listen", "pubsub", "sync", "accounts", "entitlements", "events"):
        assert command in done.stdout
    for command in ("db", "hooks", "usage", "report-usage", "admin", "doctor"):
        assert command in done.stdout
