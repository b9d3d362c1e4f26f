"""Running `marketplace-saas` in-process: `main([...])` with the environment of a test container."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = main(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture(name="cli")
def cli_fixture(
    container: Container, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    """`cli("entitlements", "list", "--json")` against this test's database and emulator."""
    settings = container.settings
    for key, value in {
        "DATABASE_URL": settings.database_url,
        "PROCUREMENT_API_ENDPOINT": settings.procurement_api_endpoint or "",
        "MARKETPLACE_PROVIDER_ID": settings.provider_id,
        "MARKETPLACE_SANDBOX": "1",
        "APPROVAL_POLICY": settings.approval_policy,
    }.items():
        monkeypatch.setenv(key, value)
    saved = structlog.get_config()
    yield Cli(capsys)
    structlog.configure(**saved)  # main() configures logging for the process: undo it
