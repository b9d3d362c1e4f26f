"""A controllable clock: real time plus an offset that `advance()` moves forward.

Everything in the emulator that depends on time (term ends, pending plan changes, pending
cancellations, offer start times, the activation delay) reads `Clock.now()`, so tests can move
time forward deterministically with `POST /emulator/v1/clock:advance`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """UTC wall clock with a test-controlled offset. Thread-safe."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._source = now or (lambda: datetime.now(UTC))
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._source() + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; negative values are refused (time never goes back)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta()

    @property
    def offset(self) -> timedelta:
        """How far `advance()` has moved the clock past real time."""
        with self._lock:
            return self._offset

    def restore(self, offset: timedelta) -> None:
        """Set the offset (a persisted clock: never less than it was)."""
        with self._lock:
            self._offset = max(offset, timedelta())


def rfc3339(value: datetime) -> str:
    """Google's JSON timestamp form: UTC, 'Z' suffix, microseconds when present."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp ('Z' or an offset); raises ValueError on anything else."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp has no time zone: {text!r}")
    return parsed.astimezone(UTC)
