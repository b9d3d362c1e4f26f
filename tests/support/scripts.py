"""The installed console scripts (`.venv/bin/marketplace-saas`, `.venv/bin/marketplace-emulator`)
run as a user runs them: a child process, its output captured as text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
SAAS = str(BIN / "marketplace-saas")
EMULATOR = str(BIN / "marketplace-emulator")


def run_script(
    script: str, *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`script args...` to its end; never raises on a non-zero exit."""
    return subprocess.run(
        [script, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
