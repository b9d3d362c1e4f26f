"""Service Control v2 (`servicecontrol.v2.json`): `services.check` and `services.report`.

v2 speaks in `AttributeContext`s (the API-gateway vocabulary: `api`, `request`, `resource`,
`source`, ...) instead of v1's operations and metric values, and Google documents no Marketplace use
of it, so what the emulator makes of it is its own choice [unconfirmed]:

- `check` `{serviceConfigId, attributes?, resources?, flags?}`: the consumer is the project named
  by a `resources[].container` of the form `projects/{number}` (an entitlement's
  `consumers[].project`), read as the `usageReportingId` `project_number:{number}`. The answer is
  `{}` (allowed) when that consumer holds an entitlement in service for the service now, else
  `{"status": {code: 7, message: "SERVICE_NOT_ACTIVATED: ..."}}`; a check error injected for the
  consumer (`faults.checkErrors`) answers its status. No container naming a project: 400.
- `report` `{serviceConfigId, operations: [AttributeContext]}`: each operation's shape is
  checked (unknown fields, non-objects: 400 for the whole request) and it is recorded as sent,
  listed by `GET /emulator/v1/services/{service}/v2Reports`; the answer is `{}`. v2 carries no
  metric values Marketplace documents, so nothing is billed.
- `serviceConfigId` is required ("Must not be empty"; `latest` is accepted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from marketplace_emulator.clock import rfc3339
from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.servicecontrol.exceptions import InvalidArgument, rpc_status
from marketplace_emulator.servicecontrol.models import ServiceControlBackend, check_error

_CHECK_FIELDS = frozenset({"attributes", "flags", "resources", "serviceConfigId"})
_REPORT_FIELDS = frozenset({"operations", "serviceConfigId"})
_CONTEXT_FIELDS = frozenset(
    {"api", "destination", "extensions", "origin", "request", "resource", "response", "source"}
)
_RESOURCE_INFO_FIELDS = frozenset({"container", "location", "name", "permission", "type"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _object(raw: Any, known: frozenset[str], path: str) -> dict[str, Any]:
    where = f" at '{path}'" if path else ""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"Invalid JSON payload received{where}: expected an object.")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        camel = _camel(name)
        if camel not in known:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
            )
        out[camel] = value
    return out


def _config_id(body: dict[str, Any]) -> str:
    value = body.get("serviceConfigId")
    if not isinstance(value, str) or not value:
        raise InvalidArgument("serviceConfigId must not be empty (use 'latest').")
    return value


def _context(raw: Any, path: str) -> dict[str, Any]:
    context = _object(raw, _CONTEXT_FIELDS, path)
    for name, value in context.items():
        if name == "extensions":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise InvalidArgument(f"Invalid value at '{path}.extensions': expected objects.")
        elif not isinstance(value, dict):
            raise InvalidArgument(f"Invalid value at '{path}.{name}': expected an object.")
    return context


def _consumer(resources: Any) -> str:
    if not isinstance(resources, list):
        raise InvalidArgument("Invalid value at 'resources': expected a list.")
    for i, raw in enumerate(resources):
        info = _object(raw, _RESOURCE_INFO_FIELDS, f"resources[{i}]")
        container = info.get("container", "")
        number = container.removeprefix("projects/") if isinstance(container, str) else ""
        if container != number and number.isdigit():
            return f"project_number:{number}"
    raise InvalidArgument(
        "resources[].container must name the consumer's project as projects/{number} "
        "(the entitlement's consumers[].project)."
    )


class ServiceControlV2:
    """v2 beside v1: the same catalog, entitlements and injected check errors."""

    def __init__(self, v1: ServiceControlBackend, faults: FaultInjector) -> None:
        self._v1 = v1
        self._faults = faults
        self._lock = threading.Lock()
        self._reports: list[dict[str, Any]] = []
        # persistence: called under the lock with each report received
        self.on_report: Callable[[dict[str, Any]], None] | None = None

    def check(self, service_name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._v1.known_service(service_name, "check")
        request = _object(body, _CHECK_FIELDS, "")
        _config_id(request)
        if "attributes" in request:
            _context(request["attributes"], "attributes")
        consumer = _consumer(request.get("resources", []))
        injected = self._faults.check_error_for(consumer)
        if injected is not None:
            error = check_error(injected, consumer)
            return {"status": {**error["status"], "message": f"{injected}: {error['detail']}"}}
        if self._v1.holder(service_name, consumer, self._v1.now()) is None:
            message = (
                f"SERVICE_NOT_ACTIVATED: consumer {consumer!r} holds no entitlement in service "
                f"for service {service_name!r}."
            )
            return {"status": rpc_status("PERMISSION_DENIED", message)}
        return {}

    def report(self, service_name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._v1.known_service(service_name, "report")
        request = _object(body, _REPORT_FIELDS, "")
        config_id = _config_id(request)
        operations = request.get("operations", [])
        if not isinstance(operations, list):
            raise InvalidArgument("Invalid value at 'operations': expected a list.")
        checked = [_context(op, f"operations[{i}]") for i, op in enumerate(operations)]
        received = rfc3339(self._v1.now())
        with self._lock:
            for op in checked:
                report = {
                    "serviceName": service_name,
                    "serviceConfigId": config_id,
                    "operation": op,
                    "receiveTime": received,
                }
                self._reports.append(report)
                if self.on_report is not None:
                    self.on_report(report)
        return {}

    def reports(self, service_name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self._reports if service_name in (None, r["serviceName"])]

    def reset(self) -> None:
        with self._lock:
            self._reports.clear()

    @contextmanager
    def frozen(self) -> Iterator[list[dict[str, Any]]]:
        """The reports received, with none received until the block ends (persistence)."""
        with self._lock:
            yield list(self._reports)

    def restore(self, reports: list[dict[str, Any]]) -> None:
        """Replace the reports with persisted ones, in order."""
        with self._lock:
            self._reports = list(reports)
