"""`marketplace-saas hooks ...` and the start-up check of `serve`, as an operator uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import HookOutbox
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.config import ConfigurationError
from marketplace_saas.entrypoints import jobs
from marketplace_saas.entrypoints.cli import main
from marketplace_saas.service.hooks.outbox import enqueue_hook
from tests.integration.backend.conftest import backend_settings
from tests.integration.backend.hooks_support import SECRET, WebhookServer, payload, webhook_server
from tests.support.infra import free_port

ENDPOINT = "http://127.0.0.1:9"


@pytest.fixture
def env(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The CLI's environment: this test's database, sandbox settings, no stray `.env`."""
    for key in list(os.environ):
        if key.startswith(("HOOK_", "MARKETPLACE_", "PROCUREMENT_", "DATABASE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("MARKETPLACE_SANDBOX", "1")
    monkeypatch.setenv("PROCUREMENT_API_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("HOOK_WEBHOOK_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    return migrated_database_url


@pytest.fixture
def container(env: str) -> Iterator[Container]:
    made = bootstrap(backend_settings(env, ENDPOINT))
    yield made
    made.close()


def enqueue(container: Container, entitlement_id: str) -> int:
    with container.unit_of_work() as uow:
        enqueue_hook(
            uow,
            "entitlement.active",
            ordering_key=entitlement_id,
            idempotency_key=f"entitlement.active:{entitlement_id}:v1",
            payload=payload(entitlement_id).to_dict(),
        )
    with container.sessions() as session:
        return session.scalars(
            sa.select(HookOutbox.id).where(HookOutbox.ordering_key == entitlement_id)
        ).one()


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_once_delivers_and_list_shows_a_dead_hook_that_retry_brings_back(
    container: Container, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"code": 500}
    server = WebhookServer(behaviour=lambda _event: (status["code"], 0.0))
    with webhook_server(server):
        monkeypatch.setenv("HOOK_RECEIVERS", server.url)
        monkeypatch.setenv("HOOK_MAX_ATTEMPTS", "1")
        item = enqueue(container, "ent-1")
        assert main(["hooks", "run", "--once"]) == 1  # the only attempt failed: dead
        [listed] = run_json(capsys, "hooks", "list", "--status", "dead")  # type: ignore[misc]
        assert listed["id"] == item
        assert "HTTP 500" in listed["lastError"]
        status["code"] = 200
        assert run_json(capsys, "hooks", "retry", "--all-dead") == {"retried": [item]}
        assert main(["hooks", "run", "--once"]) == 0
    shown = run_json(capsys, "hooks", "show", str(item))
    assert isinstance(shown, dict)
    assert shown["status"] == "delivered"
    assert shown["payload"]["entitlement"]["id"] == "ent-1"
    assert server.keys() == ["entitlement.active:ent-1:v1"]


def test_retrying_a_delivered_or_unknown_hook_is_refused_with_a_clear_message(
    container: Container, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks_module = "python:tests.integration.backend.hooks_support:record_call"
    monkeypatch.setenv("HOOK_RECEIVERS", hooks_module)
    item = enqueue(container, "ent-1")
    assert main(["hooks", "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["hooks", "retry", str(item)]) == 1
    assert "only dead, skipped or discarded items are retried" in capsys.readouterr().err
    assert main(["hooks", "show", "999999"]) == 1
    assert "hook 999999 not found" in capsys.readouterr().err


def test_hooks_list_prints_a_table_for_people(
    container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue(container, "ent-table")
    capsys.readouterr()
    assert main(["hooks", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["ID", "HOOK", "KEY", "STATUS"]
    assert "entitlement.active" in out
    assert "ent-table" in out


@pytest.mark.parametrize(
    ("receivers", "message"),
    [
        ("python:no_such_module_xyz:handle", "cannot import module 'no_such_module_xyz'"),
        ("python:json:no_such_function", "has no attribute 'no_such_function'"),
        ("ftp://example.com/hooks", "a receiver is python:module:function or an https:// URL"),
        ("https://", "no host"),
        ("entitlement.nope=https://example.com/h", "matches no hook"),
    ],
)
def test_a_misconfigured_receiver_is_a_configuration_error_naming_it(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    receivers: str,
    message: str,
) -> None:
    monkeypatch.setenv("HOOK_RECEIVERS", receivers)
    assert main(["hooks", "run", "--once"]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="HOOK_RECEIVERS"):
        jobs.jobs(backend_settings(env, ENDPOINT, hook_receivers=receivers))


def test_hooks_run_without_receivers_says_how_to_configure_them(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hooks", "run", "--once"]) == 2
    assert "no hook receivers: set HOOK_RECEIVERS" in capsys.readouterr().err


def test_serve_refuses_to_start_with_a_misconfigured_receiver(env: str) -> None:
    environment = dict(os.environ, HOOK_RECEIVERS="python:no_such_module_xyz:handle")
    environment.pop("PROCUREMENT_API_ENDPOINT")  # the sandbox starts its own emulator
    command = [sys.executable, "-m", "marketplace_saas.entrypoints.cli", "serve"]
    result = subprocess.run(
        [*command, "--no-listener", "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot import module 'no_such_module_xyz'" in result.stderr
