"""The sandbox's secrets: one admin password and one random session secret per sandbox, kept
beside its database across restarts; no constant secret; loopback only unless told otherwise."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.sandbox import sandbox_secrets, sandbox_state_dir
from marketplace_saas.entrypoints.web.app import create_app
from marketplace_saas.entrypoints.web.security import SessionCodec
from tests.integration.backend.admin_support import csrf_from
from tests.integration.backend.conftest import ContainerFactory
from tests.integration.backend.process_support import Process
from tests.integration.backend.pubsub_support import wait_for
from tests.integration.backend.test_serve import sandbox_env
from tests.support.infra import free_port
from tests.support.scripts import SAAS, run_script

pytestmark = pytest.mark.integration

# The sandbox's session secret as it stood in config.py before it became random per sandbox.
OLD_CONSTANT = "sandbox-only-session-secret-not-for-production"


def test_state_dir_is_x_sandbox_beside_a_sqlite_file_and_none_elsewhere(tmp_path: Path) -> None:
    """`X.db` -> `X.sandbox/` beside it (the contract shared with the emulator's state file)."""
    beside = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'marketplace.db'}")
    assert sandbox_state_dir(beside) == tmp_path / "marketplace.sandbox"
    assert sandbox_state_dir(Settings(DATABASE_URL="sqlite:///marketplace.db")) == Path(
        "marketplace.sandbox"
    )
    assert sandbox_state_dir(Settings(DATABASE_URL="sqlite://")) is None
    assert sandbox_state_dir(Settings(DATABASE_URL="postgresql://h/db")) is None


def test_secrets_are_made_once_private_and_read_back(tmp_path: Path) -> None:
    """The first call writes secrets.json with mode 0600; the next reads the same values."""
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    first = sandbox_secrets(settings)
    assert first.path == tmp_path / "x.sandbox" / "secrets.json"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert len(first.session_secret) >= 32
    assert sandbox_secrets(settings) == first
    other = sandbox_secrets(Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'y.db'}"))
    assert other.session_secret != first.session_secret
    assert other.admin_password != first.admin_password


def test_a_console_cookie_signed_with_the_old_constant_secret_is_refused(
    make_container: ContainerFactory,
) -> None:
    """Finding 1 of the penetration test: `{"op": "admin"}` signed with the constant that was in
    the code opened the console and its API; now it is an anonymous request."""
    forged = SessionCodec(OLD_CONSTANT, "admin", 3600).dumps({"op": "admin"})
    container = make_container()
    with TestClient(create_app(container)) as client:
        client.cookies.set("mps_admin", forged)
        assert client.get("/api/v1/overview").status_code == 401
        page = client.get("/admin/approvals", follow_redirects=False)
        assert page.status_code in (302, 303)
        assert "/admin/login" in page.headers["location"]


def _sign_in_line(banner: str) -> str:
    [line] = [line for line in banner.splitlines() if "admin sign-in" in line]
    return line


def test_serve_keeps_the_admin_password_and_says_where_across_restarts(tmp_path: Path) -> None:
    """Two starts of the sandbox on one database print the same admin password and the state
    directory; a session signed by the first start's secret still opens the console after."""
    env = sandbox_env(f"sqlite:///{tmp_path / 'marketplace.db'}")
    banners: list[str] = []
    cookies = httpx.Cookies()
    for run in range(2):
        port = free_port()
        args = ["serve", "--port", str(port), "--emulator-port", str(free_port())]
        with Process(args, env, tmp_path, f"serve-{run}", group=True) as server:
            wait_for(lambda: "Stop with Ctrl-C" in server.stdout, timeout=60, what="the banner")
            banners.append(server.stdout)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies=cookies) as http:
                if run == 0:
                    password = _sign_in_line(server.stdout).split()[4]
                    token = csrf_from(http.get("/admin/login").text)
                    form = {"name": "admin", "password": password, "csrf_token": token}
                    assert http.post("/admin/login", data=form).status_code == 303
                    cookies = http.cookies
                assert http.get("/api/v1/overview").status_code == 200
    assert _sign_in_line(banners[0]) == _sign_in_line(banners[1])
    # The usage API's sandbox token is printed with a ready request (issue 12, item 5).
    assert "usage API      POST http://127.0.0.1:" in banners[0]
    assert "(Authorization: Bearer sandbox-usage-token)" in banners[0]
    state = tmp_path / "marketplace.sandbox"
    assert f"sandbox state  {state}" in banners[1]
    kept = sandbox_secrets(Settings(DATABASE_URL=env["DATABASE_URL"]))
    assert kept.admin_password in _sign_in_line(banners[1])


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_serve_in_the_sandbox_refuses_a_non_loopback_host(tmp_path: Path, host: str) -> None:
    """`serve --host 0.0.0.0` in the sandbox: exit 2, one line naming --allow-remote."""
    env = sandbox_env(f"sqlite:///{tmp_path / 'sandbox.db'}")
    done = run_script(SAAS, "serve", "--host", host, "--port", str(free_port()), env=env)
    assert done.returncode == 2, done.stderr
    assert "--allow-remote" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "sandbox.sandbox").exists()
