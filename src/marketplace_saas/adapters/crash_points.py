"""Deterministic crash points for the crash tests: SIGKILL this process at a named point.

    MARKETPLACE_CRASH_AT=listener.before_ack:3   die the 3rd time a message is about to be acked

Points: `group_commit.before_commit` (inside a write transaction, before its COMMIT: the inbox
row's or the effects'), `procurement.after_call` (Google applied a decision, we never hear it),
`listener.before_ack` (effects committed, the ack not sent). The variable is read once at import;
unset (always, outside the tests) `reached()` is one comparison with None.
"""

from __future__ import annotations

import os
import signal
import threading

_ARMED: tuple[str, int] | None = None
_spec = os.environ.get("MARKETPLACE_CRASH_AT", "")
if _spec:
    _name, _, _count = _spec.partition(":")
    _ARMED = (_name, int(_count or "1"))
_hits = 0
_lock = threading.Lock()


def reached(point: str) -> None:
    """SIGKILL this process (no clean-up of any kind) when `point` is the armed one, n-th time."""
    global _hits
    if _ARMED is None or _ARMED[0] != point:
        return
    with _lock:
        _hits += 1
        if _hits >= _ARMED[1]:
            os.kill(os.getpid(), signal.SIGKILL)
