"""Running `marketplace-saas` as a real process in the tests, with its output in files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marketplace_saas.config import Settings

CLI = [sys.executable, "-m", "marketplace_saas.entrypoints.cli"]


def backend_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process load these settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MARKETPLACE_", "APPROVAL_", "PLAN_CHANGE_", "DATABASE_URL"))
    }
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "MARKETPLACE_PROVIDER_ID": settings.provider_id,
            "MARKETPLACE_SANDBOX": "1" if settings.sandbox else "0",
            "APPROVAL_POLICY": settings.approval_policy,
            "PLAN_CHANGE_POLICY": settings.plan_change_policy,
            "MAX_DELIVERY_ATTEMPTS": str(settings.max_delivery_attempts),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.procurement_api_endpoint:
        env["PROCUREMENT_API_ENDPOINT"] = settings.procurement_api_endpoint
    env.update(extra)
    return env


class Process:
    """A child process whose stdout and stderr go to files the test can read while it runs."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        folder: Path,
        name: str,
        *,
        command: list[str] = CLI,
        group: bool = False,
    ) -> None:
        """`group`: in a process group of its own, so `kill_group()` and `kill()` kill all of it
        (what it started too: `serve` in the sandbox starts the example provider app)."""
        self.group = group
        folder.mkdir(parents=True, exist_ok=True)
        self.stdout_path = folder / f"{name}.out"
        self.stderr_path = folder / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                [*command, *args], env=env, stdout=out, stderr=err, start_new_session=group
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def said(self, text: str) -> Callable[[], bool]:
        """A condition: `text` appeared on stderr."""
        return lambda: text in self.stderr

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        return self.popen.wait(timeout=timeout)

    def kill_group(self) -> None:
        """SIGKILL the process group (`group=True`), as `kill -9 -PGID` does: its children too,
        even once the process itself has ended."""
        # While any member lives, no other process can take the group's id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL the process, and its whole group when it has one (`group=True`)."""
        if self.group:
            self.kill_group()
        elif self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *_: Any) -> None:
        self.kill()


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
