"""What a sandbox run leaves in the working tree is ignored by git (issue 12, item 15)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        "marketplace.db",
        "marketplace.db-shm",
        "marketplace.db-wal",
        "marketplace.sandbox/secrets.json",
        "marketplace.sandbox/emulator-state.json",
    ],
)
def test_what_make_run_writes_is_ignored(path: str) -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run([git, "check-ignore", "--no-index", "-q", path], cwd=ROOT, check=False)
    assert done.returncode == 0, f"{path} is not ignored"
