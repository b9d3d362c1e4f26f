"""Group commit: the short write transactions of concurrent workers, run together.

    writes = GroupCommit(container.sessions.begin, max_batch=32)
    result = writes.run(lambda session: ...)    # returns once that work is committed

SQLite admits one writer at a time. When the listener's threads each open their own write
transaction, they queue on SQLite's lock, whose busy handler sleeps in growing steps (1, 2, 5,
10 ms...) however soon the lock is free, and every transaction pays its own BEGIN and COMMIT.
Here the threads queue in-process instead: whichever finds no transaction running becomes the
leader, runs every piece of work queued so far (up to `max_batch`) in one transaction, commits
once, and wakes the threads whose work it did; once its own work is done it hands the lead to the
oldest work still queued. Each `run` returns its own work's result only after the commit.

Each piece of work is a function of the session that only writes to the database, so it can run
again: if the shared transaction fails (one work raised, or the commit did), it is rolled back and
every piece is run again alone, in its own transaction and its caller's thread, so one failure
never takes another's writes with it and each caller gets its own result or exception. A
`max_batch` of 1 is a plain transaction per call.

A batch of several works opens its transaction with `begin_shared` (default `begin`). On
PostgreSQL that is a unit of work whose per-entitlement locks do not wait (`LockBusy` when another
transaction holds one): a batch holds its works' locks until its commit, so two replicas' batches
that waited for each other's locks would deadlock; failing at once instead, the batch is rolled
back and its works run alone, where a lock waits as usual. A work alone (`max_batch` 1, or a
batch of one) always uses `begin`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from marketplace_saas.adapters import crash_points

S = TypeVar("S")
T = TypeVar("T")


@dataclass(eq=False)
class _Work(Generic[S]):
    fn: Callable[[S], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    alone: bool = False  # its shared transaction failed: its own thread runs it alone
    # Set once the work is done, to hand its thread the lead, or to have it run `alone`.
    wake: threading.Event = field(default_factory=threading.Event)


class GroupCommit(Generic[S]):
    """Runs `fn(session)` calls from many threads in shared transactions (see the module)."""

    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[S]],
        *,
        max_batch: int = 32,
        begin_shared: Callable[[], AbstractContextManager[S]] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._begin = begin
        self._begin_shared = begin_shared or begin
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: list[_Work[S]] = []
        self._leading = False  # a thread is running batches
        self.batches = 0  # transactions committed or tried, for tests and metrics
        self.retried_alone = 0  # works run again alone after a shared transaction failed

    def run(self, fn: Callable[[S], T]) -> T:
        """Run `fn(session)` in a write transaction; its result once committed, or its error."""
        if self._max_batch == 1:
            with self._begin() as session:
                result_alone = fn(session)
                crash_points.reached("group_commit.before_commit")  # crash tests only
                return result_alone
        work: _Work[S] = _Work(fn)
        with self._mutex:
            self._queue.append(work)
            lead = not self._leading
            self._leading = True
        if not lead:
            work.wake.wait()  # done by the leader, handed the lead, or told to run alone
        if not work.done and not work.alone:
            self._lead(work)
        if work.alone:
            self._run_alone(work)
        if work.error is not None:
            raise work.error
        result: T = work.result
        return result

    def _lead(self, work: _Work[S]) -> None:
        """Run batches of the oldest queued works until `work` is done (or to run alone); then
        hand the lead to the oldest work still queued (its thread wakes and leads), or put it
        down."""
        try:
            while not work.done and not work.alone:
                with self._mutex:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                self._run_batch(batch)
        finally:
            with self._mutex:
                if self._queue:
                    self._queue[0].wake.set()
                else:
                    self._leading = False

    def _run_batch(self, batch: list[_Work[S]]) -> None:
        self.batches += 1
        try:
            with (self._begin_shared if len(batch) > 1 else self._begin)() as session:
                results = [work.fn(session) for work in batch]
                crash_points.reached("group_commit.before_commit")  # crash tests only
        except Exception as exc:
            if len(batch) == 1:
                self._finish(batch[0], None, exc)
                return
            # Each work runs again alone, in its own thread (one that waits for a lock there
            # holds up only its own caller), once this thread has handed on the lead.
            self.retried_alone += len(batch)
            for work in batch:
                work.alone = True
                work.wake.set()
            return
        except BaseException as exc:  # interrupted: nobody may wait for these any longer
            for work in batch:
                self._finish(work, None, exc)
            raise
        for work, result in zip(batch, results, strict=True):
            self._finish(work, result, None)

    def _run_alone(self, work: _Work[S]) -> None:
        try:
            with self._begin() as session:
                result = work.fn(session)
        except Exception as exc:
            self._finish(work, None, exc)
        else:
            self._finish(work, result, None)

    @staticmethod
    def _finish(work: _Work[S], result: Any, error: BaseException | None) -> None:
        work.result = result
        work.error = error
        work.done = True
        work.wake.set()
