"""An entitlement's timeline as a person reads it: each of our changes as `field: old -> new`,
each call to Google with its duration, and the raw details kept for a disclosure.

The audit log records what a change set (`details.changes`: field -> new value); the value before
is the one the previous entry of the timeline set (`None` when no entry shows it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MISSING = object()


@dataclass(frozen=True)
class Change:
    field: str
    old: str | None  # None: not known from this timeline
    new: str


def _text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _duration(details: dict[str, Any]) -> str | None:
    seconds = details.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def readable(timeline: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline (newest first, as given) with `changes`, `duration` and `raw` added."""
    entries = list(timeline)
    known: dict[str, object] = {}
    out: list[dict[str, Any]] = []
    for entry in reversed(entries):  # oldest first, to know each field's value before
        details = entry.get("details") or {}
        changes = []
        for field, new in (details.get("changes") or {}).items():
            old = known.get(field, MISSING)
            changes.append(Change(field, None if old is MISSING else _text(old), _text(new)))
            known[field] = new
        out.append(
            {
                **entry,
                "changes": changes,
                "duration": _duration(details) if entry.get("kind") == "api_call" else None,
                "raw": details or None,
            }
        )
    out.reverse()
    return out
