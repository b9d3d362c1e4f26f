"""`marketplace-saas sync` shows its progress on a terminal and adds nothing when piped."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest

from marketplace_emulator.server import Emulator
from marketplace_saas.bootstrap import Container
from tests.integration.backend.conftest import PROVIDER
from tests.integration.backend.process_support import backend_env
from tests.support.scripts import SAAS, run_script

pytestmark = pytest.mark.integration


def test_sync_shows_listing_progress_on_a_terminal_only(
    emulator: Emulator, container: Container
) -> None:
    """stderr a terminal: `sync: listed N accounts, M entitlements`; piped: nothing on stderr."""
    for _ in range(3):
        emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    env = backend_env(container.settings)
    primary, secondary = pty.openpty()
    try:
        with subprocess.Popen(
            [SAAS, "sync"], env=env, stdout=subprocess.PIPE, stderr=secondary
        ) as process:
            os.close(secondary)
            assert process.wait(timeout=120) == 0
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert b"sync: listed 3 accounts, 3 entitlements" in shown
    piped = run_script(SAAS, "sync", env=env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    assert "entitlements_seen" in piped.stdout
