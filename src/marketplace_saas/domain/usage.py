"""Usage windows and operation ids: the pure rules of metering (standard library only).

An entitlement's reporting timeline runs from `active_since` to `cancelled_at` (open while it is
not cancelled). It is cut at every UTC hour and at every plan change; each piece is a `Window`
reported under the plan that held during it, as one Service Control operation whose id is a
UUIDv5 of (entitlement, window start, plan), so that a re-send after a crash is the same operation.

Errors:

    UsageError                 a usage record that cannot be counted (the message says why)
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal

from marketplace_saas.domain.time import parse_rfc3339

HOUR = timedelta(hours=1)
# The namespace of every operationId this project derives (a UUIDv5 of the project's own URL).
OPERATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://marketplace-saas.dev/usage-operation")
MAX_DECIMAL_PLACES = 9  # the usage_records.value column is NUMERIC(38, 9)
MAX_ABS_VALUE = Decimal(10) ** 28
MAX_INTEGER_DIGITS = 28  # values stay below 10**28
# The one grammar of a usage value given as a string: JSON's number syntax, ASCII digits only
# (no `_`, no `+` sign, no spaces, no other scripts' digits). A JSON number is already in it.
VALUE_GRAMMAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_EXACT = Context(prec=MAX_INTEGER_DIGITS + MAX_DECIMAL_PLACES + 2)
# Google's reserved usage-label keys (best-practices-labeling), and the short names a provider may
# use for them in its records.
RESOURCE_NAME_LABEL = "cloudmarketplace.googleapis.com/resource_name"
CONTAINER_NAME_LABEL = "cloudmarketplace.googleapis.com/container_name"
RESERVED_LABEL_KEYS = frozenset({RESOURCE_NAME_LABEL, CONTAINER_NAME_LABEL})
RESERVED_LABELS = {"resource_name": RESOURCE_NAME_LABEL, "container_name": CONTAINER_NAME_LABEL}
MAX_LABELS = 64
MAX_LABEL_LENGTH = 63
# (key, value) pairs already found valid; labels repeat from record to record.
_VALID_LABELS: set[tuple[str, str]] = set()
_VALID_LABELS_LIMIT = 10_000


class UsageError(ValueError):
    """A usage record that cannot be counted; the message is the reason given to the caller."""


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    if moment.tzinfo is UTC and not moment.fold:  # the usual case, without two conversions
        return datetime(moment.year, moment.month, moment.day, moment.hour, tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def recent_hours(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """The last `hours` whole UTC hours, the current one included: `[start, end)`."""
    end = floor_hour(now) + HOUR
    return end - hours * HOUR, end


def next_report_at(now: datetime, grace: timedelta) -> datetime:
    """When the window holding `now` is due: the end of its hour plus the grace period."""
    return floor_hour(now) + HOUR + grace


def operation_id(entitlement_id: str, window_start: datetime, plan: str) -> str:
    """The deterministic operationId of one window (UUIDv5, as Service Control recommends)."""
    key = f"{entitlement_id}|{window_start.astimezone(UTC).isoformat()}|{plan}"
    return str(uuid.uuid5(OPERATION_NAMESPACE, key))


@dataclass(frozen=True)
class PlanChange:
    """A plan that took effect at a moment (from `plan_history`)."""

    plan: str
    effective_at: datetime
    previous_plan: str | None = None


@dataclass(frozen=True)
class Window:
    """One reporting window: [start, end) under one plan."""

    start: datetime
    end: datetime
    plan: str

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Timeline:
    """When an entitlement was reportable, and under which plan at each moment."""

    active_since: datetime
    cancelled_at: datetime | None
    # (start, plan), sorted by start; the first starts at `active_since`.
    periods: tuple[tuple[datetime, str], ...]

    @classmethod
    def build(
        cls,
        *,
        active_since: datetime,
        cancelled_at: datetime | None,
        current_plan: str,
        changes: Sequence[PlanChange] = (),
    ) -> Timeline:
        """The timeline from the entitlement's record and its plan history.

        Changes at or before `active_since` decide the first plan; later ones start new periods.
        Without history the first plan is the current plan; with only later changes, the first
        change's `previous_plan` (when known) held before it.
        """
        ordered = sorted(changes, key=lambda c: c.effective_at)
        before = [c for c in ordered if c.effective_at <= active_since]
        after = [c for c in ordered if c.effective_at > active_since]
        if before:
            first = before[-1].plan
        elif after and after[0].previous_plan:
            first = after[0].previous_plan
        elif after:
            first = after[0].plan
        else:
            first = current_plan
        periods = [(active_since, first)]
        for change in after:
            if cancelled_at is not None and change.effective_at >= cancelled_at:
                break
            if change.plan != periods[-1][1]:
                periods.append((change.effective_at, change.plan))
        return cls(active_since, cancelled_at, tuple(periods))

    def is_active_at(self, moment: datetime) -> bool:
        if moment < self.active_since:
            return False
        return self.cancelled_at is None or moment < self.cancelled_at

    def plan_at(self, moment: datetime) -> str:
        plan = self.periods[0][1]
        for start, name in self.periods:
            if start > moment:
                break
            plan = name
        return plan

    def window_at(self, moment: datetime) -> Window:
        """The window holding `moment` (which must be inside the timeline)."""
        hour = floor_hour(moment)
        start = max(hour, self.active_since)
        end = hour + HOUR
        if len(self.periods) == 1:  # no plan change: the common case, and the fast one
            if self.cancelled_at is not None:
                end = min(end, self.cancelled_at)
            return Window(start, end, self.periods[0][1])
        for change, _plan in self.periods[1:]:
            if change <= moment:
                start = max(start, change)
            elif change < end:
                end = change
                break
        if self.cancelled_at is not None:
            end = min(end, self.cancelled_at)
        return Window(start, end, self.plan_at(moment))

    def windows(self, since: datetime, until: datetime) -> Iterator[Window]:
        """Every window starting at or after `since` and ending at or before `until`, in order."""
        moment = max(since, self.active_since)
        stop = until if self.cancelled_at is None else min(until, self.cancelled_at)
        while moment < stop:
            window = self.window_at(moment)
            if window.end > stop:
                return
            yield window
            moment = window.end


def parse_value(raw: object) -> Decimal:
    """A usage amount: an integer, a decimal, or a string holding one; never negative.

    Strings follow `VALUE_GRAMMAR`. Whatever the form, the value must be below 10**28 and have at
    most 9 decimal places once trailing zeros are dropped (`1e-999999999` is refused, not rounded
    to zero). The checks read the number's digits and exponent, never compute with it, so no
    exponent (`1e999999999`) can overflow.
    """
    if type(raw) is int:  # the common case: a JSON integer (no places, so only two checks)
        if raw < 0:
            raise UsageError("value must not be negative")
        if raw >= MAX_ABS_VALUE:
            raise UsageError("value is too large")
        return Decimal(raw)
    if isinstance(raw, bool) or raw is None:
        raise UsageError("value must be a number")
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise UsageError("value must be a finite number")
        value = Decimal(repr(raw))
    elif isinstance(raw, str):
        if len(raw) > 200 or not VALUE_GRAMMAR.fullmatch(raw):
            raise UsageError(
                f"value {raw[:40]!r} is not a number (digits 0-9, an optional fraction and "
                "exponent, as a JSON number is written)"
            )
        value = Decimal(raw)
    else:
        raise UsageError("value must be a number")
    return _bounded(value)


def _bounded(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise UsageError("value must be a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = len(digits)
    while significant and digits[significant - 1] == 0:
        significant -= 1
    if significant == 0:
        return Decimal(0)
    if sign:
        raise UsageError("value must not be negative")
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise UsageError("value is too large")
    places = -(exponent + len(digits) - significant)
    if places > MAX_DECIMAL_PLACES:
        raise UsageError(f"value has more than {MAX_DECIMAL_PLACES} decimal places")
    return value.quantize(Decimal(1).scaleb(-max(places, 0)), context=_EXACT)


def parse_time(raw: object, *, now: datetime, max_skew: timedelta) -> datetime:
    """A record's time: RFC 3339 with an offset (default `now`), not beyond `now + max_skew`."""
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise UsageError("time must be an RFC 3339 timestamp, e.g. 2025-01-31T12:00:00Z")
    try:
        moment = parse_rfc3339(raw)
    except ValueError:
        shown = raw[:60] if len(raw) <= 60 else raw[:60] + "..."
        raise UsageError(
            f"time {shown!r} is not an RFC 3339 timestamp with an offset in years 1 to 9999, "
            "e.g. 2025-01-31T12:00:00Z"
        ) from None
    if moment > now + max_skew:
        raise UsageError(f"time {raw!r} is in the future")
    return moment


def _label_char(ch: str) -> bool:
    return ch in "_-" or ("0" <= ch <= "9") or (ch.isalpha() and not ch.isupper())


def label_problem(labels: Mapping[str, str]) -> str | None:
    """Why `labels` break Google's label syntax, or None when they follow it.

    Resource Manager's rules, which Google asks usage labels to follow: at most 64 labels; keys
    of 1 to 63 characters starting with a lowercase (or international) letter; values of at most
    63 characters; lowercase letters, digits, `_` and `-` (international letters allowed). The two
    reserved keys are accepted as spelled. The emulator's Service Control applies the same rule
    (`tests/unit/test_usage_labels_shared.py` runs both on one table).
    """
    if len(labels) > MAX_LABELS:
        return f"{len(labels)} labels: at most {MAX_LABELS} are allowed"
    for key, value in labels.items():
        if key not in RESERVED_LABEL_KEYS:
            if not 1 <= len(key) <= MAX_LABEL_LENGTH:
                return f"label key {key!r} must be 1 to {MAX_LABEL_LENGTH} characters long"
            if not (key[0].isalpha() and not key[0].isupper()):
                return f"label key {key!r} must start with a lowercase letter"
            if not all(_label_char(ch) for ch in key):
                return (
                    f"label key {key!r} may hold only lowercase letters, digits, '_' and '-' "
                    f"(reserved keys: {', '.join(sorted(RESERVED_LABEL_KEYS))})"
                )
        if len(value) > MAX_LABEL_LENGTH:
            return f"label {key!r}: the value must be at most {MAX_LABEL_LENGTH} characters long"
        if not all(_label_char(ch) for ch in value):
            return f"label {key!r}: the value may hold only lowercase letters, digits, '_' and '-'"
    return None


def parse_labels(raw: object) -> dict[str, str]:
    """A record's labels: string to string, in Google's label syntax (`label_problem`).

    `resource_name` / `container_name` are short names of the reserved keys (see `user_labels`);
    a record may not give a reserved key under both of its names.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError("labels must be an object of string values")
    labels: dict[str, str] = {}
    fresh: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise UsageError(f"label {key!r} must have a string value")
        if (key, value) not in _VALID_LABELS:  # labels repeat from record to record
            fresh[key] = value
        labels[key] = value
    if len(labels) > MAX_LABELS or fresh:
        problem = label_problem(labels if len(labels) > MAX_LABELS else fresh)
        if problem is not None:
            raise UsageError(problem)
    for short, reserved in RESERVED_LABELS.items():
        if short in labels and reserved in labels:
            raise UsageError(f"labels {short!r} and {reserved!r} name the same reserved label")
    if len(_VALID_LABELS) + len(fresh) > _VALID_LABELS_LIMIT:
        _VALID_LABELS.clear()
    _VALID_LABELS.update(fresh.items())
    return labels


def user_labels(label_sets: Sequence[dict[str, str]]) -> dict[str, str]:
    """An operation's userLabels: the labels every record of the window agrees on.

    `resource_name` and `container_name` become Marketplace's reserved keys.
    """
    if not label_sets:
        return {}
    common = dict(label_sets[0])
    for labels in label_sets[1:]:
        common = {k: v for k, v in common.items() if labels.get(k) == v}
        if not common:
            break
    return {RESERVED_LABELS.get(k, k): v for k, v in sorted(common.items())}


def split_integer(total: Decimal, *, final: bool) -> tuple[int, Decimal]:
    """An int64 metric's reported amount and the remainder carried to the next window.

    The whole part is reported; the fraction is carried. The last window of an entitlement
    (`final`) has nothing to carry into, so it rounds half up.
    """
    if final:
        return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP)), Decimal(0)
    whole = total.quantize(Decimal(1), rounding=ROUND_FLOOR)
    return int(whole), total - whole
