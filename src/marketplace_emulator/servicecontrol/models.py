"""Service Control v1 as Marketplace uses it: the usage ledger and its rules.

`check` answers whether a consumer may be charged; `report` records usage. The consumer is an
entitlement's `usageReportingId`; the plan that held at the operation's `startTime` decides which
metric names (`{service}/{metric id}`) are declared. See `docs/emulator.md`, "Service Control", for
each rule and which of them Google's documentation does not confirm.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME, Catalog
from marketplace_emulator.clock import Clock, rfc3339
from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.servicecontrol import responses
from marketplace_emulator.servicecontrol.exceptions import InvalidArgument, ServiceNotKnown
from marketplace_emulator.servicecontrol.exceptions import rpc_status as _status
from marketplace_emulator.servicecontrol.labels import label_problem

SERVICE_CONFIG_ID = "emulator-config-1"
SERVICE_ROLLOUT_ID = "emulator-rollout-1"

# The google.rpc status each CheckError code carries in `checkErrors[].status` (unconfirmed).
_CHECK_ERROR_STATUS = {
    "NOT_FOUND": "NOT_FOUND",
    "PROJECT_INVALID": "INVALID_ARGUMENT",
    "CONSUMER_INVALID": "INVALID_ARGUMENT",
    "INJECTED_ERROR": "UNAVAILABLE",
}
_CHECK_ERROR_DETAIL = {
    "SERVICE_NOT_ACTIVATED": "The consumer hasn't activated the service.",
    "BILLING_DISABLED": "The consumer cannot access the service because billing is disabled.",
    "PROJECT_DELETED": "The consumer's project has been marked as deleted (soft deletion).",
}


class PeriodView(Protocol):
    """A span during which an entitlement was in service on one plan (`end` None: still is)."""

    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def plan(self) -> str: ...

    def contains(self, time: datetime) -> bool: ...


class EntitlementView(Protocol):
    """What Service Control reads of a procurement entitlement."""

    @property
    def id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def plan(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def usage_reporting_id(self) -> str: ...
    @property
    def periods(self) -> Sequence[PeriodView]: ...


class ProcurementView(Protocol):
    def find_by_usage_reporting_id(
        self, consumer_id: str, include_deleted: bool = False
    ) -> Sequence[EntitlementView]: ...


@dataclass(frozen=True)
class AcceptedOperation:
    service_name: str
    operation: responses.Operation
    provider: str
    entitlement: str
    plan: str
    accept_time: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            **self.operation.to_json(),
            "serviceName": self.service_name,
            "provider": self.provider,
            "entitlement": self.entitlement,
            "plan": self.plan,
            "acceptTime": rfc3339(self.accept_time),
        }


@dataclass
class _Ledger:
    by_operation_id: dict[tuple[str, str], AcceptedOperation] = field(default_factory=dict)
    windows: dict[tuple[str, str, str], list[tuple[datetime, datetime, str]]] = field(
        default_factory=dict
    )
    accepted: list[AcceptedOperation] = field(default_factory=list)


class _OperationFailed(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ServiceControlBackend:
    def __init__(
        self,
        procurement: ProcurementView,
        catalog: Catalog,
        clock: Clock,
        faults: FaultInjector,
    ) -> None:
        self._procurement = procurement
        self._catalog = catalog
        self._clock = clock
        self._faults = faults
        self._lock = threading.Lock()
        self._ledger = _Ledger()
        # persistence: called under the lock with each newly accepted operation
        self.on_accept: Callable[[AcceptedOperation], None] | None = None

    # -- the API ---------------------------------------------------------------------------------

    def check(self, service_name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._known_service(service_name, "check")
        request = responses.parse_check(body)
        op = request.operation
        _no_duplicate_values(op, "operation")
        out: dict[str, Any] = {"operationId": op.operation_id}
        injected = self._faults.check_error_for(op.consumer_id)
        if injected is not None:
            out["checkErrors"] = [check_error(injected, op.consumer_id)]
        else:
            entitlement = self._holder(service_name, op.consumer_id, op.start)
            if entitlement is None and not request.skip_activation_check:
                out["checkErrors"] = [check_error("SERVICE_NOT_ACTIVATED", op.consumer_id)]
            else:
                declared = self._declared(service_name, entitlement)
                for mvs in op.metric_value_sets:
                    if mvs.metric_name not in declared:
                        raise InvalidArgument(_unknown_metric(mvs.metric_name, entitlement))
                out["checkInfo"] = {"consumerInfo": _consumer_info(op.consumer_id)}
        out["serviceConfigId"] = SERVICE_CONFIG_ID
        out["serviceRolloutId"] = SERVICE_ROLLOUT_ID
        return out

    def report(self, service_name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._known_service(service_name, "report")
        request = responses.parse_report(body)
        for i, op in enumerate(request.operations):
            _no_duplicate_values(op, f"operations[{i}]")
        errors: list[dict[str, Any]] = []
        with self._lock:
            for op in request.operations:
                try:
                    self._report_one(service_name, op)
                except _OperationFailed as failed:
                    errors.append(
                        {
                            "operationId": op.operation_id,
                            "status": _status(failed.status, failed.message),
                        }
                    )
        out: dict[str, Any] = {}
        if errors:
            out["reportErrors"] = errors
        out["serviceConfigId"] = SERVICE_CONFIG_ID
        out["serviceRolloutId"] = SERVICE_ROLLOUT_ID
        return out

    def accepted_reports(self, service_name: str | None = None) -> list[AcceptedOperation]:
        with self._lock:
            return [
                a
                for a in self._ledger.accepted
                if service_name is None or a.service_name == service_name
            ]

    def reset(self) -> None:
        with self._lock:
            self._ledger = _Ledger()

    @contextmanager
    def frozen(self) -> Iterator[list[AcceptedOperation]]:
        """The accepted operations, with no report accepted until the block ends."""
        with self._lock:
            yield list(self._ledger.accepted)

    def restore(self, accepted: Sequence[AcceptedOperation]) -> None:
        """Replace the ledger with these accepted operations (persisted ones), in order."""
        with self._lock:
            self._ledger = _Ledger()
            for operation in accepted:
                self._record(operation)

    # -- the rules -------------------------------------------------------------------------------

    def _report_one(self, service_name: str, op: responses.Operation) -> None:
        if self._faults.fail_report_operation():
            raise _OperationFailed("UNAVAILABLE", "Injected fault: the operation was not recorded.")
        previous = self._ledger.by_operation_id.get((service_name, op.operation_id))
        if previous is not None:
            if previous.operation.fingerprint() == op.fingerprint():
                return  # the same operation again: accepted, counted once
            raise _OperationFailed(
                "ALREADY_EXISTS",
                f"operationId {op.operation_id!r} was already reported with different content.",
            )
        if op.end is None:
            raise _OperationFailed("INVALID_ARGUMENT", "endTime is required for report.")
        problem = label_problem(op.user_labels)
        if problem is not None:
            raise _OperationFailed("INVALID_ARGUMENT", f"userLabels: {problem}")
        windows = [
            (mvs.metric_name, mv.start or op.start, mv.end or op.end)
            for mvs in op.metric_value_sets
            for mv in mvs.values
        ]
        for name, start, end in [("operation", op.start, op.end), *windows]:
            if not start < end:
                raise _OperationFailed(
                    "INVALID_ARGUMENT", f"{name}: startTime must be before endTime."
                )
        max_lateness = self._faults.settings.servicecontrol.max_lateness_seconds
        if max_lateness is not None:
            oldest = self._clock.now() - timedelta(seconds=max_lateness)
            if op.end < oldest:
                raise _OperationFailed(
                    "INVALID_ARGUMENT",
                    f"endTime {rfc3339(op.end)} is older than the allowed lateness "
                    f"({max_lateness} s before {rfc3339(self._clock.now())}).",
                )
        entitlement = self._holder(service_name, op.consumer_id, op.start)
        if entitlement is None:
            raise _OperationFailed(
                "PERMISSION_DENIED",
                f"SERVICE_NOT_ACTIVATED: consumer {op.consumer_id!r} holds no reportable "
                f"entitlement for service {service_name!r} at {rfc3339(op.start)}.",
            )
        holder, plan = entitlement
        declared = self._declared(service_name, entitlement)
        for mvs in op.metric_value_sets:
            if mvs.metric_name not in declared:
                raise _OperationFailed(
                    "INVALID_ARGUMENT", _unknown_metric(mvs.metric_name, entitlement)
                )
        for name, start, end in windows:
            for other_start, other_end, other_id in self._ledger.windows.get(
                (service_name, op.consumer_id, name), []
            ):
                if start < other_end and other_start < end:
                    raise _OperationFailed(
                        "INVALID_ARGUMENT",
                        f"{name}: window {rfc3339(start)}..{rfc3339(end)} overlaps operation "
                        f"{other_id!r} ({rfc3339(other_start)}..{rfc3339(other_end)}) for consumer "
                        f"{op.consumer_id!r}.",
                    )
        accepted = AcceptedOperation(
            service_name=service_name,
            operation=op,
            provider=holder.provider,
            entitlement=holder.id,
            plan=plan,
            accept_time=self._clock.now(),
        )
        self._record(accepted)
        if self.on_accept is not None:
            self.on_accept(accepted)

    def _record(self, accepted: AcceptedOperation) -> None:
        op, service_name = accepted.operation, accepted.service_name
        self._ledger.by_operation_id[(service_name, op.operation_id)] = accepted
        self._ledger.accepted.append(accepted)
        for mvs in op.metric_value_sets:
            for mv in mvs.values:
                key = (service_name, op.consumer_id, mvs.metric_name)
                window = (mv.start or op.start, mv.end or op.end or op.start, op.operation_id)
                self._ledger.windows.setdefault(key, []).append(window)

    def now(self) -> datetime:
        return self._clock.now()

    def known_service(self, service_name: str, method: str) -> None:
        """Refuse (403) a service that no product of the catalog uses."""
        self._known_service(service_name, method)

    def holder(
        self, service_name: str, consumer_id: str, moment: datetime
    ) -> tuple[EntitlementView, str] | None:
        """The entitlement (and its plan) that made `consumer_id` billable at `moment`."""
        return self._holder(service_name, consumer_id, moment)

    def _known_service(self, service_name: str, method: str) -> None:
        if service_name != DEFAULT_SERVICE_NAME and not self._catalog.by_service(service_name):
            raise ServiceNotKnown(service_name, method)

    def _holder(
        self, service_name: str, consumer_id: str, moment: datetime
    ) -> tuple[EntitlementView, str] | None:
        """The entitlement (and its plan) that made `consumer_id` billable at `moment`."""
        # Deleted entitlements count too: usage from before the deletion stays reportable.
        found = self._procurement.find_by_usage_reporting_id(consumer_id, include_deleted=True)
        for entitlement in found:
            product = self._catalog.get(entitlement.provider, entitlement.product)
            if product is None or product.service_name != service_name:
                continue
            for period in entitlement.periods:
                spec = product.plans.get(period.plan)
                if spec is not None and spec.usage_billed and period.contains(moment):
                    return entitlement, period.plan
        return None

    def _declared(
        self, service_name: str, entitlement: tuple[EntitlementView, str] | None
    ) -> set[str]:
        if entitlement is not None:
            holder, plan = entitlement
            product = self._catalog.get(holder.provider, holder.product)
            return product.metric_names(plan) if product else set()
        return {
            name
            for _, _, product in self._catalog.by_service(service_name)
            for plan in product.plans
            for name in product.metric_names(plan)
        }


def _no_duplicate_values(op: responses.Operation, path: str) -> None:
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for mvs in op.metric_value_sets:
        for mv in mvs.values:
            key = (mvs.metric_name, tuple(sorted(mv.labels.items())))
            if key in seen:
                raise InvalidArgument(
                    f"Duplicate metric value in '{path}': metric {mvs.metric_name!r} with labels "
                    f"{dict(key[1])} appears more than once."
                )
            seen.add(key)


def _unknown_metric(metric_name: str, entitlement: tuple[EntitlementView, str] | None) -> str:
    plan = f" for plan {entitlement[1]!r}" if entitlement else ""
    return f"Metric {metric_name!r} is not declared{plan} of this service."


def check_error(code: str, consumer_id: str) -> dict[str, Any]:
    if code.endswith("_UNAVAILABLE"):
        status = "UNAVAILABLE"
    else:
        status = _CHECK_ERROR_STATUS.get(code, "PERMISSION_DENIED")
    detail = _CHECK_ERROR_DETAIL.get(code, f"{code} for consumer {consumer_id}.")
    return {
        "code": code,
        "subject": consumer_id,
        "detail": detail,
        "status": _status(status, detail),
    }


def _consumer_info(consumer_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {"type": "PROJECT"}
    kind, _, number = consumer_id.partition(":")
    if kind == "project_number" and number.isdigit():
        info["projectNumber"] = number
        info["consumerNumber"] = number
    return info
