"""What the chaos run proves at its end; each check returns the problems it found (empty: held)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from marketplace_emulator.procurement.exceptions import NotFound
from marketplace_saas.domain.entitlements import IN_SERVICE, PENDING_CANCELLATION
from marketplace_saas.domain.time import parse_rfc3339
from tests.reliability.stack import PROVIDER, Stack

MAX_SHOWN = 10


def _rows(database_url: str, query: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def _deleted_by(database_url: str, column: str, record_id: str) -> str:
    """Who marked a record deleted, from our audit log: what a failure report needs to say."""
    rows = _rows(
        database_url,
        f"SELECT at, actor, action, event_id FROM audit_log WHERE kind = 'change' "
        f"AND action LIKE '%delet%' AND {column} = '{record_id}' ORDER BY id",
    )
    return "; ".join(f"{r['action']} by {r['actor']} (event {r['event_id']})" for r in rows)


def records_match_api(stack: Stack, accounts: list[str], entitlements: list[str]) -> list[str]:
    """Every account and entitlement the customers ever had: our row equals the API's truth
    (state, plan, pending plan, deleted or not; the account's sign-up approval and deletion)."""
    api = stack.emulator.emulator.procurement
    ours_e = {
        r["id"]: r
        for r in _rows(
            stack.database_url,
            "SELECT id, state, plan, new_pending_plan, deleted_at FROM entitlements",
        )
    }
    ours_a = {
        r["id"]: r
        for r in _rows(stack.database_url, "SELECT id, signup_approval, deleted_at FROM accounts")
    }
    problems: list[str] = []
    for eid in entitlements:
        row = ours_e.get(eid)
        try:
            truth = api.get_entitlement(PROVIDER, eid).to_json()
        except NotFound:
            if row is not None and row["deleted_at"] is None:
                problems.append(f"entitlement {eid}: deleted at the API, live in our records")
            continue
        want = (truth["state"], truth.get("plan"), truth.get("newPendingPlan") or None)
        have = None if row is None else (row["state"], row["plan"], row["new_pending_plan"])
        if row is not None and row["deleted_at"] is not None:
            who = _deleted_by(stack.database_url, "entitlement_id", eid)
            problems.append(
                f"entitlement {eid}: deleted in our records, live at the API {want}: {who}"
            )
        elif have != want:
            problems.append(f"entitlement {eid}: ours {have}, the API's {want}")
    for aid in accounts:
        row = ours_a.get(aid)
        try:
            account = api.get_account(PROVIDER, aid)
        except NotFound:
            if row is not None and row["deleted_at"] is None:
                problems.append(f"account {aid}: deleted at the API, live in our records")
            continue
        have_approval = None if row is None else row["signup_approval"]
        if row is not None and row["deleted_at"] is not None:
            who = _deleted_by(stack.database_url, "account_id", aid)
            problems.append(f"account {aid}: erased in our records, live at the API: {who}")
        elif have_approval != account.signup_state:
            problems.append(
                f"account {aid}: ours {have_approval}, the API's {account.signup_state}"
            )
    return problems


def hooks_delivered_in_order(stack: Stack) -> list[str]:
    """Every hook in the outbox delivered at least once, and per entitlement (ordering key) the
    receiver saw them first in the order they were raised."""
    outbox = _rows(
        stack.database_url,
        "SELECT id, idempotency_key, ordering_key, status FROM hook_outbox ORDER BY id",
    )
    received = [(item.ordering_key, item.idempotency_key) for item in stack.receiver.received]
    first_seen: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for _key, idem in received:
        if idem not in seen:
            seen.add(idem)
    raised: dict[str, list[str]] = defaultdict(list)
    for row in outbox:
        raised[row["ordering_key"]].append(row["idempotency_key"])
    order = {row["idempotency_key"]: row["ordering_key"] for row in outbox}
    done: set[str] = set()
    for _key, idem in received:
        if idem in order and idem not in done:
            done.add(idem)
            first_seen[order[idem]].append(idem)
    problems = [
        f"hook {row['idempotency_key']} ({row['status']}) never reached the receiver"
        for row in outbox
        if row["idempotency_key"] not in seen
    ]
    problems += [
        f"hooks of {key} arrived as {first_seen[key]}, raised as {keys}"
        for key, keys in raised.items()
        if first_seen[key] != keys
    ]
    return problems


@dataclass
class _Story:
    """What the provider's app believes of one entitlement, told by its hooks alone."""

    on: bool = False
    ending: bool = False  # pending cancellation
    plan: str | None = None

    def tell(self, hook: str, plan: str | None) -> bool:
        """Apply one hook; False when the story cannot go that way."""
        if hook in ("entitlement.active", "entitlement.restored"):
            if self.on:
                return False
            self.on, self.plan = True, plan
        elif hook in ("entitlement.cancelled", "entitlement.suspended"):
            if not self.on:
                return False
            self.on = self.ending = False
        elif hook == "entitlement.pending_cancellation":
            if not self.on or self.ending:
                return False
            self.ending = True
        elif hook == "entitlement.cancellation_reverted":
            if not self.on or not self.ending:
                return False
            self.ending = False
        elif hook == "entitlement.plan_changed":
            if not self.on:
                return False
            self.plan = plan
        elif hook == "entitlement.renewed":
            return self.on
        return True

    def ends(self) -> tuple[bool, bool, str | None]:
        return self.on, self.ending, self.plan if self.on else None


def versions_never_go_back(stack: Stack) -> list[str]:
    """Per entitlement, the versions (Google's `updateTime`) our writes applied, in the order
    they were written, never go back: what the per-entitlement lock and the stale check promise.
    Two replicas writing one entitlement at once, each from its own read of the API, would apply
    an older version after a newer one; the sync heals the row afterwards, so the end state
    alone would not show it. (Deletions carry no version and are not compared.)"""
    rows = _rows(
        stack.database_url,
        "SELECT id, entitlement_id, actor, event_id, details FROM audit_log "
        "WHERE kind = 'change' AND action IN ('entitlement.created', 'entitlement.updated') "
        "ORDER BY id",
    )
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    problems: list[str] = []
    for row in rows:
        details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
        version = details.get("version")
        if not version:
            continue
        before = newest.get(row["entitlement_id"])
        if before is not None and parse_rfc3339(version) < parse_rfc3339(before[0]):
            first = before[1]
            problems.append(
                f"entitlement {row['entitlement_id']}: version {version} written by "
                f"{row['actor']} (event {row['event_id']}, audit {row['id']}) after {before[0]} "
                f"by {first['actor']} (event {first['event_id']}, audit {first['id']})"
            )
            continue
        newest[row["entitlement_id"]] = (version, row)
    return problems[:MAX_SHOWN]


def hooks_tell_the_true_story(stack: Stack, entitlements: list[str]) -> list[str]:
    """Per entitlement, the hooks in the order raised tell a story the provider's app can follow
    (turned on only when off, a pending cancellation only once and reverted only when pending, a
    plan change only while on), and it ends where the API is: on or off, pending cancellation or
    not, the plan served. A sync repairs our records but never a hook raised from a stale read,
    so this is where two replicas applying one entitlement's changes at once would show."""
    outbox = _rows(
        stack.database_url,
        "SELECT hook, ordering_key, payload FROM hook_outbox "
        "WHERE hook LIKE 'entitlement.%' ORDER BY id",
    )
    told: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for row in outbox:
        payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
        told[row["ordering_key"]].append((row["hook"], payload.get("plan")))
    api = stack.emulator.emulator.procurement
    problems: list[str] = []
    for eid in entitlements:
        story, hooks = _Story(), told.get(eid, [])
        wrong = next((hook for hook, plan in hooks if not story.tell(hook, plan)), None)
        if wrong is not None:
            problems.append(f"entitlement {eid}: {wrong} out of turn in {[h for h, _ in hooks]}")
            continue
        try:
            truth = api.get_entitlement(PROVIDER, eid).to_json()
        except NotFound:
            truth = {"state": "deleted"}
        on = truth["state"] in IN_SERVICE
        want = (on, truth["state"] == PENDING_CANCELLATION, truth.get("plan") if on else None)
        if story.ends() != want:
            problems.append(
                f"entitlement {eid}: the hooks end (on, ending, plan) = {story.ends()}, the API "
                f"is {truth['state']} {truth.get('plan')}: {[h for h, _ in hooks]}"
            )
    return problems


def _hour_sums(
    ingested: dict[str, tuple[str, str, int, datetime]],
) -> dict[tuple[str, str], list[tuple[datetime, int]]]:
    by_key: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for entitlement, metric, value, when in ingested.values():
        by_key[(entitlement, metric)].append((when, value))
    return by_key


def ledger_matches_usage(
    stack: Stack, ingested: dict[str, tuple[str, str, int, datetime]]
) -> tuple[list[str], int]:
    """Service Control's accepted operations: no operationId twice; per entitlement and metric
    the windows are contiguous; each window's value is the sum of the records ingested in it,
    and every ingested unit is in some window. Answers (problems, operations accepted)."""
    accepted = [a.to_json() for a in stack.emulator.emulator.servicecontrol.accepted_reports()]
    problems: list[str] = []
    ids = [op["operationId"] for op in accepted]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    problems += [f"operationId {i} accepted more than once" for i in duplicates]
    windows: dict[tuple[str, str], list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for op in accepted:
        start, end = parse_rfc3339(op["startTime"]), parse_rfc3339(op["endTime"])
        for metric_set in op["metricValueSets"]:
            metric = metric_set["metricName"].rsplit("/", 1)[1].removeprefix(f"{op['plan']}_")
            value = sum(int(v.get("int64Value", 0)) for v in metric_set["metricValues"])
            windows[(op["entitlement"], metric)].append((start, end, value))
    records = _hour_sums(ingested)
    for key, spans in windows.items():
        spans.sort()
        for (_s, end, _v), (start, _e, _w) in itertools.pairwise(spans):
            if end != start:
                problems.append(f"{key}: a window ends {end} and the next starts {start}")
        for start, end, value in spans:
            expected = sum(v for when, v in records.get(key, []) if start <= when < end)
            if value != expected:
                problems.append(f"{key} {start}..{end}: reported {value}, ingested {expected}")
    for key, items in records.items():
        reported = sum(v for _s, _e, v in windows.get(key, []))
        total = sum(v for _w, v in items)
        if reported != total:
            problems.append(f"{key}: {total} ingested, {reported} reported in all")
    return problems[:MAX_SHOWN] + (
        [f"... {len(problems)} in all"] if problems[MAX_SHOWN:] else []
    ), len(accepted)


def unsettled(stack: Stack) -> list[str]:
    """Work left: notifications not settled, hooks not delivered, a sync block not cleared."""
    inbox = _rows(
        stack.database_url,
        "SELECT status, count(*) AS n FROM inbox WHERE status NOT IN "
        "('processed', 'ignored', 'invalid') GROUP BY status",
    )
    hooks = _rows(
        stack.database_url,
        "SELECT status, count(*) AS n FROM hook_outbox WHERE status <> 'delivered' GROUP BY status",
    )
    blocks = _rows(stack.database_url, "SELECT id FROM sync_blocks WHERE resolved_at IS NULL")
    return (
        [f"inbox {r['status']}: {r['n']}" for r in inbox]
        + [f"hooks {r['status']}: {r['n']}" for r in hooks]
        + [f"a sync block still open (the console's banner): {r['id']}" for r in blocks]
    )
