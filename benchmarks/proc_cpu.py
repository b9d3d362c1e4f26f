"""CPU time of the processes a benchmark run involves, read from /proc (Linux only).

    before = snapshot(groups)          # {"listeners": [pid, ...], "postgres": [...], ...}
    ...                                # the measured run
    used = cpu_since(before, groups)   # {"listeners": 12.3, ...}: CPU seconds per group

A pid's CPU is its user + system time (`/proc/<pid>/stat`, fields 14 and 15, in clock ticks);
a pid first seen at the end counts from zero (a PostgreSQL backend opened during the run), a
pid gone by the end is lost (none of the measured processes ends during a run). PostgreSQL's
backends may end during a run (a pool that closes connections): `BackendWatch` samples them.
"""

from __future__ import annotations

import os
import time
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


class BackendWatch:
    """The CPU of a PostgreSQL database's server processes, those that end during the run too
    (a connection closed by the client's pool): `sample()` often, `used()` at the end.

    The backends are the postmaster's children whose title names the database; each sample
    keeps every one's latest CPU, so a backend that ended counts up to its last sample. The
    samples' own CPU (this thread's) is kept in `cost`, for the caller to leave out of its own.
    """

    def __init__(self, postmaster: int, database: str, exclude: Iterable[int] = ()) -> None:
        self._children = Path(f"/proc/{postmaster}/task/{postmaster}/children")
        self._marker = f" {database} "
        self._ours: dict[int, bool] = dict.fromkeys(exclude, False)
        self._start: dict[int, float] = {}
        self._latest: dict[int, float] = {}
        self.cost = 0.0
        self.sample()
        self._start = dict(self._latest)

    def sample(self) -> None:
        started = time.thread_time()
        try:
            pids = [int(pid) for pid in self._children.read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            ours = self._ours.get(pid)
            if ours is None:
                title = command_line(pid)
                ours = self._marker in title
                if ours or title.startswith("postgres: "):  # not before its title is set
                    self._ours[pid] = ours
            if ours and (cpu := cpu_seconds(pid)) is not None:
                self._latest[pid] = cpu
        self.cost += time.thread_time() - started

    def used(self) -> float:
        """CPU seconds since the watch began, of every backend seen."""
        self.sample()
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._latest.items())

    @property
    def seen(self) -> int:
        return len(self._latest)


def parent(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2 :].split()[1])
