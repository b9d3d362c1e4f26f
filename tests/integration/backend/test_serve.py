"""`marketplace-saas serve` in sandbox mode, as a process: a purchase becomes an entitlement."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import Entitlement
from tests.integration.backend.process_support import CLI, Process, run_cli
from tests.integration.backend.pubsub_support import wait_for
from tests.support.infra import free_port

pytestmark = pytest.mark.integration


def sandbox_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MARKETPLACE_", "PROCUREMENT_", "SERVICE_CONTROL_", "GOOGLE_CLOUD_"))
        and k not in {"DATABASE_URL", "PUBSUB_EMULATOR_HOST", "APPROVAL_POLICY"}
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "APPROVAL_POLICY": "auto",
            "PYTHONUNBUFFERED": "1",
            "SYNC_INTERVAL_SECONDS": "3600",
            **extra,
        }
    )
    return env


def entitlement_states(database_url: str) -> dict[str, str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(Entitlement.id, Entitlement.state)).all())  # type: ignore[arg-type]
    except sa.exc.OperationalError:
        return {}  # not migrated yet
    finally:
        engine.dispose()


def serve_and_purchase(env: dict[str, str], tmp_path: Path, name: str) -> None:
    port, emulator_port = free_port(), free_port()
    args = ["serve", "--port", str(port), "--emulator-port", str(emulator_port)]
    with Process(args, env, tmp_path, name, group=True) as server:
        wait_for(lambda: "Stop with Ctrl-C" in server.stdout, timeout=60, what="the banner")
        banner = server.stdout
        assert "SANDBOX" in banner
        assert f"http://127.0.0.1:{emulator_port}" in banner
        assert "marketplace-emulator purchase --product example-product --plan basic" in banner
        [sign_in] = [line for line in banner.splitlines() if "admin sign-in" in line]
        assert sign_in.split()[2:4] == ["admin", "/"]
        [app_line] = [line for line in banner.splitlines() if "example app" in line]
        example_app = app_line.split()[2]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        provider = env.get("MARKETPLACE_PROVIDER_ID", "DEMO-sandbox")
        bought = httpx.post(
            f"http://127.0.0.1:{emulator_port}/emulator/v1/providers/{provider}/purchases",
            json={"product": "example-product", "plan": "basic"},
        )
        assert bought.status_code == 201, bought.text
        entitlement_id = bought.json()["entitlement"]["name"].rsplit("/", 1)[1]
        wait_for(
            lambda: (
                entitlement_states(env["DATABASE_URL"]).get(entitlement_id) == "ENTITLEMENT_ACTIVE"
            ),
            timeout=60,
            what="the entitlement active in the database",
        )
        listed = run_cli(["entitlements", "list", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        [row] = [r for r in json.loads(listed.stdout) if r["id"] == entitlement_id]
        assert row["state"] == "ENTITLEMENT_ACTIVE"
        assert row["serviceEnabled"] is True

        def workspace() -> dict[str, object] | None:
            workspaces = httpx.get(f"{example_app}/api/workspaces").json()["workspaces"]
            found: dict[str, object] | None = workspaces.get(entitlement_id)
            return found

        # The sandbox's example provider app received the provisioning hook.
        wait_for(lambda: workspace() is not None, timeout=60, what="the example app's workspace")
        assert (workspace() or {}).get("plan") == "basic"
        server.signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, server.stderr


def test_serve_sandbox_push_mode_turns_a_purchase_into_an_active_entitlement(
    tmp_path: Path,
) -> None:
    env = sandbox_env(f"sqlite:///{tmp_path / 'sandbox.db'}")
    serve_and_purchase(env, tmp_path, "serve-push")


def test_serve_sandbox_through_the_pubsub_emulator(tmp_path: Path, pubsub_env: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = sandbox_env(
        f"sqlite:///{tmp_path / 'sandbox.db'}",
        PUBSUB_EMULATOR_HOST=pubsub_env,
        MARKETPLACE_PROVIDER_ID=f"DEMO-serve-{suffix}",
        MARKETPLACE_SUBSCRIPTION=f"serve-{suffix}",
    )
    serve_and_purchase(env, tmp_path, "serve-pubsub")


def test_serve_refuses_a_port_in_use_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = sandbox_env(f"sqlite:///{tmp_path / 'sandbox.db'}")
        done = subprocess.run(
            [*CLI, "serve", "--port", str(port), "--emulator-port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}" in done.stderr
