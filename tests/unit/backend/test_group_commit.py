"""GroupCommit: shared transactions for concurrent writers, each caller with its own outcome."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from marketplace_saas.adapters.db.group_commit import GroupCommit


class FakeDatabase:
    """Transactions as lists of what their works wrote; committed or rolled back."""

    def __init__(self, fail_commit_of_shared: bool = False) -> None:
        self.committed: list[list[str]] = []
        self.rolled_back: list[list[str]] = []
        self.fail_commit_of_shared = fail_commit_of_shared
        self.lock = threading.Lock()

    @contextmanager
    def begin(self) -> Iterator[list[str]]:
        writes: list[str] = []
        try:
            yield writes
        except BaseException:
            with self.lock:
                self.rolled_back.append(writes)
            raise
        if self.fail_commit_of_shared and len(writes) > 1:
            with self.lock:
                self.rolled_back.append(writes)
            raise RuntimeError("commit failed")
        with self.lock:
            self.committed.append(writes)


def writer(name: str) -> Any:
    def work(writes: list[str]) -> str:
        writes.append(name)
        return f"done {name}"

    return work


def test_one_caller_gets_its_result_after_its_own_commit() -> None:
    db = FakeDatabase()
    group: GroupCommit[list[str]] = GroupCommit(db.begin, max_batch=8)
    assert group.run(writer("a")) == "done a"
    assert db.committed == [["a"]]
    assert group.batches == 1


def test_max_batch_one_is_a_transaction_per_call() -> None:
    db = FakeDatabase()
    group: GroupCommit[list[str]] = GroupCommit(db.begin, max_batch=1)
    assert [group.run(writer(n)) for n in "abc"] == ["done a", "done b", "done c"]
    assert db.committed == [["a"], ["b"], ["c"]]
    with pytest.raises(ValueError):
        GroupCommit(db.begin, max_batch=0)


def run_while_held(group: GroupCommit[list[str]], names: str) -> dict[str, Any]:
    """Hold a first transaction open until every other caller is queued, then let all finish;
    each caller's outcome (result or exception) by name."""
    release = threading.Event()
    outcomes: dict[str, Any] = {}

    def first(writes: list[str]) -> str:
        writes.append("first")
        release.wait(10)
        return "done first"

    def call(name: str, work: Any) -> None:
        try:
            outcomes[name] = group.run(work)
        except Exception as exc:
            outcomes[name] = exc

    leader = threading.Thread(target=call, args=("first", first))
    leader.start()
    while not group._leading:  # the leader's transaction is open
        threading.Event().wait(0.001)
    others = [
        threading.Thread(target=call, args=(name, work)) for name, work in _works(names).items()
    ]
    for thread in others:
        thread.start()
    while len(group._queue) < len(others):  # every other caller is queued behind it
        threading.Event().wait(0.001)
    release.set()
    for thread in [leader, *others]:
        thread.join(10)
    return outcomes


def _works(names: str) -> dict[str, Any]:
    works: dict[str, Any] = {}
    for name in names:
        if name == "X":

            def failing(writes: list[str]) -> str:
                writes.append("X")
                raise KeyError("X fails")

            works[name] = failing
        else:
            works[name] = writer(name)
    return works


def test_callers_queued_behind_a_transaction_share_the_next_one() -> None:
    db = FakeDatabase()
    group: GroupCommit[list[str]] = GroupCommit(db.begin, max_batch=32)
    outcomes = run_while_held(group, "abcde")
    assert outcomes == {"first": "done first", **{n: f"done {n}" for n in "abcde"}}
    assert db.committed[0] == ["first"]
    assert sorted(db.committed[1]) == list("abcde")  # one shared transaction
    assert len(db.committed) == 2
    assert group.batches == 2


def test_a_failing_work_rolls_back_alone_and_the_others_commit() -> None:
    db = FakeDatabase()
    group: GroupCommit[list[str]] = GroupCommit(db.begin, max_batch=32)
    outcomes = run_while_held(group, "abXcd")
    assert isinstance(outcomes["X"], KeyError)
    assert {n: outcomes[n] for n in "abcd"} == {n: f"done {n}" for n in "abcd"}
    shared = db.rolled_back[0]  # the shared try ran up to X and was undone
    assert shared[-1] == "X"
    assert set(shared) <= set("abXcd")
    assert db.rolled_back[1:] == [["X"]]
    committed = sorted(w for tx in db.committed[1:] for w in tx)
    assert committed == list("abcd")
    assert all(len(tx) == 1 for tx in db.committed[1:])
    assert group.retried_alone == 5


def test_a_failed_shared_commit_runs_each_work_again_alone() -> None:
    db = FakeDatabase(fail_commit_of_shared=True)
    group: GroupCommit[list[str]] = GroupCommit(db.begin, max_batch=32)
    outcomes = run_while_held(group, "abc")
    assert {n: outcomes[n] for n in "abc"} == {n: f"done {n}" for n in "abc"}
    assert sorted(db.rolled_back[0]) == list("abc")
    assert sorted(tx[0] for tx in db.committed[1:]) == list("abc")


def test_more_callers_than_a_batch_holds_all_finish_in_batches_of_max_batch() -> None:
    db = FakeDatabase()
    group: GroupCommit[list[str]] = GroupCommit(db.begin, max_batch=2)
    outcomes = run_while_held(group, "abcdefg")
    assert {n: outcomes[n] for n in "abcdefg"} == {n: f"done {n}" for n in "abcdefg"}
    assert all(len(tx) <= 2 for tx in db.committed)
    assert sorted(w for tx in db.committed[1:] for w in tx) == list("abcdefg")
    assert group.batches == 1 + 4  # the held one, then 7 works two at a time
