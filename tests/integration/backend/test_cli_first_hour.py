"""What a new user met in the first hour with `marketplace-saas`, through the installed script:
listings cut by `head`, `report-usage --now` in the future, `usage show` numbers and unknown ids,
bad DATABASE_URL values, and pydantic's wording around our configuration errors."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from marketplace_saas.service.metering.ingest import record_usage
from tests.support.metering import (
    FixedClock,
    SeededEntitlement,
    metering_container,
    seed_entitlements,
)
from tests.support.scripts import SAAS, run_script

pytestmark = pytest.mark.integration

PROJECT_VARIABLES = ("MARKETPLACE_", "GOOGLE_", "PROCUREMENT_", "SERVICE_CONTROL_", "SESSION_")


def clean_env(**values: str) -> dict[str, str]:
    """The environment without any of the project's variables, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_VARIABLES)}
    env.pop("DATABASE_URL", None)
    return {**env, "PYTHONUNBUFFERED": "1", **values}


@pytest.fixture
def env(migrated_database_url: str) -> dict[str, str]:
    """A database with 40 entitlements, and 120 requests ingested for `ent-0` in one hour."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    container = metering_container(
        migrated_database_url, clock=FixedClock(base + timedelta(hours=1))
    )
    with container.sessions.begin() as session:
        seed_entitlements(
            session,
            [
                SeededEntitlement(f"ent-{i}", "basic", base, f"project_number:{i}")
                for i in range(40)
            ],
        )
    start = base + timedelta(minutes=23)
    record_usage(
        container,
        [
            {
                "id": f"r{i}",
                "entitlement": "ent-0",
                "metric": "requests",
                "value": 1,
                "time": (start + timedelta(seconds=i)).isoformat(),
            }
            for i in range(120)
        ],
    )
    container.close()
    return clean_env(
        DATABASE_URL=migrated_database_url,
        MARKETPLACE_SANDBOX="1",
        PROCUREMENT_API_ENDPOINT="http://127.0.0.1:9",
        SERVICE_CONTROL_API_ENDPOINT="http://127.0.0.1:9",
    )


def test_a_listing_cut_short_by_its_reader_ends_quietly(env: dict[str, str]) -> None:
    """`entitlements list | head -0`: the reader is gone before the first line; no
    BrokenPipeError traceback, the exit code a shell gives a tool cut off by SIGPIPE."""
    with subprocess.Popen(
        [SAAS, "entitlements", "list"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()  # the reader went away
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141
    assert stderr == ""


def test_a_listing_piped_into_head_prints_its_first_lines(env: dict[str, str]) -> None:
    """`entitlements list | head -4` as a user types it: four lines, nothing on stderr."""
    with subprocess.Popen(
        [SAAS, "entitlements", "list"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as listing:
        head = subprocess.run(
            ["head", "-4"], stdin=listing.stdout, capture_output=True, text=True, check=True
        )
        assert listing.stderr is not None
        stderr = listing.stderr.read().decode()
        listing.wait(timeout=60)
    assert len(head.stdout.splitlines()) == 4
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr


def test_report_usage_refuses_a_now_later_than_the_clock(env: dict[str, str]) -> None:
    """An hour that has not ended is neither closed nor sent: exit 2 with the reason; the
    ledger stays empty. `--allow-future` (tests) lets it through."""
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    refused = run_script(SAAS, "report-usage", "--once", "--dry-run", "--now", future, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "later than the clock" in refused.stderr
    assert "--allow-future" in refused.stderr
    assert refused.stdout == ""
    allowed = run_script(
        SAAS, "report-usage", "--once", "--dry-run", "--now", future, "--allow-future", env=env
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "would be sent" in allowed.stdout


def test_usage_show_prints_plain_numbers(env: dict[str, str]) -> None:
    """120 requests read `requests=120`, not `1.2E+2`, in the table and in JSON."""
    table = run_script(SAAS, "usage", "show", "ent-0", env=env)
    assert table.returncode == 0, table.stderr
    assert "requests=120" in table.stdout
    shown = run_script(SAAS, "usage", "show", "ent-0", "--json", env=env)
    assert '"requests": "120"' in shown.stdout


def test_every_show_says_not_found_and_exits_1_for_an_unknown_id(env: dict[str, str]) -> None:
    """`usage show nosuch` agrees with `entitlements show nosuch`."""
    for command in (["usage", "show"], ["entitlements", "show"]):
        done = run_script(SAAS, *command, "nosuch", env=env)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "entitlement nosuch not found" in done.stderr
        assert done.stdout == ""


BAD_URLS = {
    "unparsable": ("not a url", "DATABASE_URL is not a database URL"),
    "unreachable": ("postgresql://nobody@127.0.0.1:9/none", "cannot connect"),
    "missing dir": ("sqlite:///{tmp}/no/such/dir/x.db", "does not exist"),
    "mysql driver": ("mysql://u@127.0.0.1/db", "no driver for 'mysql'"),
}


@pytest.mark.parametrize("case", BAD_URLS, ids=list(BAD_URLS))
@pytest.mark.parametrize("command", [["accounts", "list"], ["serve", "--port", "9"]])
def test_a_bad_database_url_is_one_line_and_exit_2(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    """One line naming DATABASE_URL and the problem, exit 2; `--debug` adds the traceback."""
    url, expected = BAD_URLS[case]
    env = clean_env(DATABASE_URL=url.format(tmp=tmp_path))
    done = run_script(SAAS, *command, env=env)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: configuration: DATABASE_URL")
    assert expected in line
    debug = run_script(SAAS, "--debug", *command, env=env)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == line


def test_outside_the_sandbox_the_error_is_the_projects_own_sentence(tmp_path: Path) -> None:
    """`MARKETPLACE_SANDBOX=0` with nothing set: our sentence, without pydantic's input dump or
    its link."""
    env = clean_env(MARKETPLACE_SANDBOX="0", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    done = run_script(SAAS, "accounts", "list", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: configuration: unsafe configuration: "
        "GOOGLE_CLOUD_PROJECT must be set outside the sandbox"
    )


def service_account_key(path: Path) -> Path:
    """A service-account key file (never used to call Google: nothing here fetches a token)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "backend@p.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    return path


def test_read_only_commands_need_no_session_secret_but_serve_does(tmp_path: Path) -> None:
    """Production settings without SESSION_SECRET: `accounts list` and `events list` run;
    `serve` (the web app signs sessions) refuses in one line."""
    env = clean_env(
        MARKETPLACE_SANDBOX="0",
        GOOGLE_CLOUD_PROJECT="p",
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
        GOOGLE_APPLICATION_CREDENTIALS=str(service_account_key(tmp_path / "key.json")),
    )
    assert run_script(SAAS, "db", "upgrade", env=env).returncode == 0
    for command in (["accounts", "list"], ["events", "list"], ["entitlements", "list"]):
        done = run_script(SAAS, *command, env=env)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout == "(none)\n"
    serve = run_script(SAAS, "serve", "--port", "9", env=env)
    assert serve.returncode == 2
    assert serve.stderr.strip() == (
        "error: configuration: unsafe configuration: "
        "SESSION_SECRET must be set to at least 32 random characters"
    )
