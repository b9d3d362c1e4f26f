"""CPU time of the processes a benchmark run involves, read from /proc (Linux only).

    before = snapshot(groups)          # {"listeners": [pid, ...], "postgres": [...], ...}
    ...                                # the measured run
    used = cpu_since(before, groups)   # {"listeners": 12.3, ...}: CPU seconds per group

A pid's CPU is its user + system time (`/proc/<pid>/stat`, fields 14 and 15, in clock ticks);
a pid first seen at the end counts from zero (a PostgreSQL backend opened during the run), a
pid gone by the end is lost (none of the measured processes ends during a run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """The user + system CPU seconds of `pid` so far; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICK


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, grandchildren...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def snapshot(groups: dict[str, Iterable[int]]) -> dict[str, dict[int, float]]:
    return {
        name: {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}
        for name, pids in groups.items()
    }


def cpu_since(
    before: dict[str, dict[int, float]], groups: dict[str, Iterable[int]]
) -> dict[str, float]:
    """CPU seconds each group used since `before` (its pids as listed now)."""
    now = snapshot(groups)
    return {
        name: sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items())
        for name, pids in now.items()
    }
