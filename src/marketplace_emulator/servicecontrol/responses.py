"""Parse Service Control request bodies into typed operations, and serialise the answers.

Only shape is checked here: JSON types, field names (lowerCamel or the proto's snake_case, as
Google's JSON transcoding accepts), RFC 3339 timestamps, int64 values as JSON strings, one value per
MetricValue. Anything malformed rejects the whole request with 400 INVALID_ARGUMENT. The rules
(entitlements, metrics, windows, duplicates) live in `models`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketplace_emulator.clock import parse_rfc3339, rfc3339
from marketplace_emulator.servicecontrol.exceptions import InvalidArgument

_OPERATION_FIELDS = frozenset(
    {
        "operationId",
        "operationName",
        "consumerId",
        "startTime",
        "endTime",
        "labels",
        "metricValueSets",
        "logEntries",
        "importance",
        "quotaProperties",
        "resources",
        "traceSpans",
        "userLabels",
        "extensions",
    }
)
_METRIC_VALUE_SET_FIELDS = frozenset({"metricName", "metricValues"})
_VALUE_KINDS = (
    "int64Value",
    "doubleValue",
    "boolValue",
    "stringValue",
    "distributionValue",
    "moneyValue",
)
_METRIC_VALUE_FIELDS = frozenset({"labels", "startTime", "endTime", *_VALUE_KINDS})
_CHECK_FIELDS = frozenset(
    {"operation", "serviceConfigId", "requestProjectSettings", "skipActivationCheck"}
)
_REPORT_FIELDS = frozenset({"operations", "serviceConfigId"})
_INT64 = re.compile(r"-?\d{1,19}")


@dataclass(frozen=True)
class MetricValue:
    labels: dict[str, str]
    start: datetime | None
    end: datetime | None
    kind: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.kind: self.value}
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.start is not None:
            out["startTime"] = rfc3339(self.start)
        if self.end is not None:
            out["endTime"] = rfc3339(self.end)
        return out


@dataclass(frozen=True)
class MetricValueSet:
    metric_name: str
    values: tuple[MetricValue, ...]

    def to_json(self) -> dict[str, Any]:
        return {"metricName": self.metric_name, "metricValues": [v.to_json() for v in self.values]}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    consumer_id: str
    start: datetime
    end: datetime | None
    operation_name: str | None = None
    metric_value_sets: tuple[MetricValueSet, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    user_labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operationId": self.operation_id,
            "consumerId": self.consumer_id,
            "startTime": rfc3339(self.start),
        }
        if self.end is not None:
            out["endTime"] = rfc3339(self.end)
        if self.operation_name is not None:
            out["operationName"] = self.operation_name
        out["metricValueSets"] = [s.to_json() for s in self.metric_value_sets]
        if self.labels:
            out["labels"] = dict(self.labels)
        out["userLabels"] = dict(self.user_labels)
        return out

    def fingerprint(self) -> str:
        """The operation's content in a canonical form: equal content, equal fingerprint."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class CheckRequest:
    operation: Operation
    skip_activation_check: bool = False
    service_config_id: str | None = None


@dataclass(frozen=True)
class ReportRequest:
    operations: tuple[Operation, ...]
    service_config_id: str | None = None


def load_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body counts as `{}`)."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("Invalid JSON payload received. The body must be a JSON object.")
    return body


def parse_check(body: dict[str, Any]) -> CheckRequest:
    body = _fields(body, _CHECK_FIELDS, "")
    operation = body.get("operation")
    if operation is None:
        raise InvalidArgument("Request field 'operation' is required.")
    return CheckRequest(
        operation=_operation(operation, "operation"),
        skip_activation_check=_bool(body.get("skipActivationCheck", False), "skipActivationCheck"),
        service_config_id=_opt_str(body.get("serviceConfigId"), "serviceConfigId"),
    )


def parse_report(body: dict[str, Any]) -> ReportRequest:
    body = _fields(body, _REPORT_FIELDS, "")
    operations = body.get("operations", [])
    if not isinstance(operations, list):
        raise InvalidArgument("Invalid value at 'operations': expected a list of operations.")
    return ReportRequest(
        operations=tuple(_operation(op, f"operations[{i}]") for i, op in enumerate(operations)),
        service_config_id=_opt_str(body.get("serviceConfigId"), "serviceConfigId"),
    )


def _operation(raw: Any, path: str) -> Operation:
    op = _fields(raw, _OPERATION_FIELDS, path)
    operation_id = _required_str(op.get("operationId"), f"{path}.operationId")
    consumer_id = _required_str(op.get("consumerId"), f"{path}.consumerId")
    start = op.get("startTime")
    if start is None:
        raise InvalidArgument(f"Request field '{path}.startTime' is required.")
    sets = op.get("metricValueSets", [])
    if not isinstance(sets, list):
        raise InvalidArgument(f"Invalid value at '{path}.metricValueSets': expected a list.")
    return Operation(
        operation_id=operation_id,
        consumer_id=consumer_id,
        start=_time(start, f"{path}.startTime"),
        end=None if op.get("endTime") is None else _time(op["endTime"], f"{path}.endTime"),
        operation_name=_opt_str(op.get("operationName"), f"{path}.operationName"),
        metric_value_sets=tuple(
            _metric_value_set(s, f"{path}.metricValueSets[{i}]") for i, s in enumerate(sets)
        ),
        labels=_labels(op.get("labels"), f"{path}.labels"),
        user_labels=_labels(op.get("userLabels"), f"{path}.userLabels"),
    )


def _metric_value_set(raw: Any, path: str) -> MetricValueSet:
    mvs = _fields(raw, _METRIC_VALUE_SET_FIELDS, path)
    values = mvs.get("metricValues", [])
    if not isinstance(values, list):
        raise InvalidArgument(f"Invalid value at '{path}.metricValues': expected a list.")
    return MetricValueSet(
        metric_name=_required_str(mvs.get("metricName"), f"{path}.metricName"),
        values=tuple(_metric_value(v, f"{path}.metricValues[{i}]") for i, v in enumerate(values)),
    )


def _metric_value(raw: Any, path: str) -> MetricValue:
    mv = _fields(raw, _METRIC_VALUE_FIELDS, path)
    kinds = [k for k in _VALUE_KINDS if k in mv]
    if len(kinds) != 1:
        raise InvalidArgument(
            f"Invalid value at '{path}': a MetricValue holds exactly one of {list(_VALUE_KINDS)}"
            f" (got {kinds or 'none'})."
        )
    kind = kinds[0]
    return MetricValue(
        labels=_labels(mv.get("labels"), f"{path}.labels"),
        start=None if mv.get("startTime") is None else _time(mv["startTime"], f"{path}.startTime"),
        end=None if mv.get("endTime") is None else _time(mv["endTime"], f"{path}.endTime"),
        kind=kind,
        value=_value(kind, mv[kind], f"{path}.{kind}"),
    )


def _value(kind: str, value: Any, path: str) -> Any:
    if kind == "int64Value":
        if not isinstance(value, str):
            raise InvalidArgument(
                f"Invalid value at '{path}' (TYPE_INT64), {json.dumps(value)}: int64 values are "
                'JSON strings, e.g. "150".'
            )
        if not _INT64.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
            raise InvalidArgument(f"Invalid value at '{path}' (TYPE_INT64), {value!r}.")
        return str(int(value))
    if kind == "doubleValue":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(f"Invalid value at '{path}' (TYPE_DOUBLE), {json.dumps(value)}.")
        return float(value)
    if kind == "boolValue":
        if not isinstance(value, bool):
            raise InvalidArgument(f"Invalid value at '{path}' (TYPE_BOOL), {json.dumps(value)}.")
        return value
    if kind == "stringValue":
        if not isinstance(value, str):
            raise InvalidArgument(f"Invalid value at '{path}' (TYPE_STRING), {json.dumps(value)}.")
        return value
    if not isinstance(value, dict):
        raise InvalidArgument(f"Invalid value at '{path}': expected an object.")
    return value


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _fields(raw: Any, known: frozenset[str], path: str) -> dict[str, Any]:
    """The object with proto field names normalised to lowerCamel; unknown names are refused."""
    where = f" at '{path}'" if path else ""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"Invalid JSON payload received{where}: expected an object.")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        camel = name if name in known else _snake_to_camel(name)
        if camel not in known:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
            )
        out[camel] = value
    return out


def _required_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"Request field '{path}' is required and must be a non-empty string.")
    return value


def _opt_str(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"Invalid value at '{path}' (TYPE_STRING), {json.dumps(value)}.")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"Invalid value at '{path}' (TYPE_BOOL), {json.dumps(value)}.")
    return value


def _labels(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"Invalid value at '{path}': expected a map of strings to strings.")
    return dict(value)


def _time(value: Any, path: str) -> datetime:
    try:
        return parse_rfc3339(value)
    except (ValueError, TypeError):
        raise InvalidArgument(
            f"Invalid value at '{path}' (type.googleapis.com/google.protobuf.Timestamp), "
            f"{json.dumps(value)}."
        ) from None
