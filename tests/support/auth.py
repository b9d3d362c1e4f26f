"""An emulator that requires OAuth tokens, and service-account keys for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from marketplace_emulator.events import EventSink, RecordingSink
from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread


@contextmanager
def secured_emulator(
    provider: str, *, sink: EventSink | None = None, **options: Any
) -> Iterator[RunningEmulator]:
    """An emulator with `require_auth`, served on a free port until the block ends."""
    emulator = Emulator(
        sink=sink if sink is not None or "push_endpoint" in options else RecordingSink(),
        providers=[provider],
        require_auth=True,
        **options,
    )
    running = run_in_thread(emulator)
    try:
        yield running
    finally:
        running.stop()
        emulator.close()


def key_file(running: RunningEmulator, folder: Path, **options: Any) -> Path:
    """A service-account key file from the running emulator, written to `folder/key.json`."""
    key = running.emulator.oauth.create_key(f"{running.url}/token", **options)
    path = folder / f"{options.get('name', 'key')}.json"
    path.write_text(json.dumps(key), encoding="utf-8")
    return path
