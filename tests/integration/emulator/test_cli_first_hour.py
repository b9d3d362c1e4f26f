"""`marketplace-emulator` as a new user meets it, through the installed script: its help reads
like `marketplace-saas --help`, `signup-token` prints the token to paste, every command takes
`--json`, errors are one `error: ...` line."""

from __future__ import annotations

import json
import os

import pytest

from marketplace_emulator.server import Emulator, RunningEmulator
from tests.integration.emulator.conftest import PROVIDER
from tests.support.scripts import EMULATOR, SAAS, run_script

pytestmark = pytest.mark.integration


def emulator(live: RunningEmulator, *args: str) -> tuple[int, str, str]:
    done = run_script(
        EMULATOR, "--url", live.url, "--provider", PROVIDER, *args, env=dict(os.environ)
    )
    return done.returncode, done.stdout, done.stderr


def test_help_lists_each_command_once_and_every_option_says_what_it_does() -> None:
    """No `{serve,purchase,...}` brace list; `serve --help` explains each option; the layout is
    marketplace-saas's (`COMMAND` in the usage line)."""
    env = dict(os.environ)
    top = run_script(EMULATOR, "--help", env=env).stdout
    assert "{" not in top
    assert top.count("signup-token") == 1
    assert "COMMAND ..." in top
    assert "COMMAND ..." in run_script(SAAS, "--help", env=env).stdout
    serve = run_script(EMULATOR, "serve", "--help", env=env).stdout
    options = serve.split("options:", 1)[1]
    for option in ("--host HOST", "--port PORT", "--pubsub-project", "--push-endpoint URL"):
        [line] = [line for line in options.splitlines() if line.strip().startswith(option)]
        index = options.splitlines().index(line)
        described = line.strip().removeprefix(option).strip() or options.splitlines()[index + 1]
        assert described.strip(), f"{option} has no help text"


def test_signup_token_prints_the_bare_token_and_json_with_json(
    live_emulator: RunningEmulator, emu: Emulator
) -> None:
    """What the README says to paste is what is printed: one JWT line; `--json` the answer."""
    emu.procurement.purchase(PROVIDER, "example-product", "basic", account_id="first-hour")
    code, out, err = emulator(
        live_emulator, "signup-token", "first-hour", "--audience", "localhost"
    )
    assert code == 0, err
    [token] = out.splitlines()
    assert token.count(".") == 2
    assert not token.startswith("{")
    code, out, _ = emulator(
        live_emulator, "signup-token", "first-hour", "--audience", "localhost", "--json"
    )
    assert code == 0
    assert json.loads(out)["token"].count(".") == 2


@pytest.mark.parametrize(
    "command", [["reports"], ["products"], ["notifications"], ["status"], ["faults", "show"]]
)
def test_every_listing_takes_json(live_emulator: RunningEmulator, command: list[str]) -> None:
    """`reports --json` (and every other listing) is accepted and prints JSON."""
    code, out, err = emulator(live_emulator, *command, "--json")
    assert code == 0, err
    assert isinstance(json.loads(out), dict)


def test_errors_are_one_line_as_in_marketplace_saas(live_emulator: RunningEmulator) -> None:
    """`error: ...` on stderr, exit 1, as `marketplace-saas` says it."""
    code, out, err = emulator(live_emulator, "renew", "no-such-entitlement")
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith("error: 404 NOT_FOUND")
