"""The Procurement gateway without a network: Google's client over `HttpMockSequence`."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from googleapiclient.http import HttpMockSequence

from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.adapters.procurement_errors import (
    FailedPreconditionError,
    NotFoundError,
    ProcurementError,
    TransientProcurementError,
    benign_outcome,
    classify_http_error,
)
from marketplace_saas.config import Settings

ENTITLEMENT = {
    "name": "providers/DEMO-unit/entitlements/e-1",
    "account": "providers/DEMO-unit/accounts/a-1",
    "state": "ENTITLEMENT_ACTIVE",
}


def _error(status: int, name: str, message: str = "nope") -> tuple[dict[str, str], str]:
    body = {"error": {"code": status, "message": message, "status": name}}
    return {"status": str(status)}, json.dumps(body)


def _ok(body: Any) -> tuple[dict[str, str], str]:
    return {"status": "200"}, json.dumps(body)


class Recorder(HttpMockSequence):  # type: ignore[misc]
    """HttpMockSequence that remembers the URIs and bodies it was asked for."""

    def __init__(self, responses: list[Any]) -> None:
        super().__init__(responses)
        self.requests: list[tuple[str, str, Any]] = []

    def request(self, uri: str, method: str = "GET", body: Any = None, **kwargs: Any) -> Any:
        self.requests.append((method, uri, body))
        item = self._iterable[0] if self._iterable else None
        if isinstance(item, BaseException):
            self._iterable.pop(0)
            raise item
        return super().request(uri, method, body, **kwargs)


def gateway(responses: list[Any], max_attempts: int = 3) -> tuple[ProcurementGateway, Recorder]:
    settings = Settings(
        _env_file=None,
        marketplace_provider_id="DEMO-unit",
        procurement_api_endpoint="http://procurement.test",
        marketplace_sandbox=True,
    )
    mock = Recorder(responses)
    sleeps: list[float] = []
    gw = ProcurementGateway(
        settings, http_factory=lambda: mock, max_attempts=max_attempts, sleep=sleeps.append
    )
    return gw, mock


def test_get_entitlement_builds_the_provider_scoped_name_on_the_configured_endpoint() -> None:
    gw, mock = gateway([_ok(ENTITLEMENT)])
    assert gw.get_entitlement("e-1") == ENTITLEMENT
    method, uri, _ = mock.requests[0]
    assert method == "GET"
    assert uri.startswith("http://procurement.test/v1/providers/DEMO-unit/entitlements/e-1")


def test_a_404_reads_as_none() -> None:
    """GET of a deleted entitlement or account is None, not an error (the codelab's 'deleted')."""
    gw, _ = gateway([_error(404, "NOT_FOUND"), _error(404, "NOT_FOUND")])
    assert gw.get_entitlement("gone") is None
    assert gw.get_account("gone") is None


def test_transient_statuses_are_retried_until_success() -> None:
    gw, mock = gateway([_error(503, "UNAVAILABLE"), _error(429, "RESOURCE_EXHAUSTED"), _ok({})])
    gw.approve_entitlement("e-1")
    assert len(mock.requests) == 3
    assert all(r[1].endswith("entitlements/e-1:approve?alt=json") for r in mock.requests)


def test_retries_are_bounded_and_end_in_a_transient_error() -> None:
    gw, mock = gateway([_error(500, "INTERNAL")] * 5, max_attempts=3)
    with pytest.raises(TransientProcurementError) as caught:
        gw.get_entitlement("e-1")
    assert len(mock.requests) == 3
    assert caught.value.status_code == 500
    assert caught.value.action == "get_entitlement"


def test_timeouts_and_connection_errors_are_retried() -> None:
    gw, mock = gateway([TimeoutError("timed out"), ConnectionResetError("reset"), _ok(ENTITLEMENT)])
    assert gw.get_entitlement("e-1") == ENTITLEMENT
    assert len(mock.requests) == 3


def test_a_dropped_connection_on_every_attempt_is_transient() -> None:
    gw, _ = gateway([http.client.RemoteDisconnected("closed")] * 3, max_attempts=3)
    with pytest.raises(TransientProcurementError, match="RemoteDisconnected"):
        gw.approve_account("a-1")


def test_wrong_state_is_a_failed_precondition_and_not_retried() -> None:
    gw, mock = gateway([_error(400, "FAILED_PRECONDITION", "Cannot approve: wrong state")])
    with pytest.raises(FailedPreconditionError, match="wrong state") as caught:
        gw.approve_entitlement("e-1")
    assert len(mock.requests) == 1
    assert benign_outcome(caught.value) == "already_approved"


def test_other_client_errors_are_real_failures() -> None:
    gw, mock = gateway([_error(403, "PERMISSION_DENIED", "caller lacks permission")])
    with pytest.raises(ProcurementError) as caught:
        gw.list_accounts().__next__()
    assert type(caught.value) is ProcurementError
    assert caught.value.status == "PERMISSION_DENIED"
    assert benign_outcome(caught.value) is None
    assert len(mock.requests) == 1


def test_list_entitlements_pages_through_next_page_tokens_and_passes_the_filter() -> None:
    first = {"entitlements": [ENTITLEMENT], "nextPageToken": "t2"}
    second = {"entitlements": [{**ENTITLEMENT, "name": "providers/DEMO-unit/entitlements/e-2"}]}
    gw, mock = gateway([_ok(first), _ok(second)])
    names = [e["name"] for e in gw.list_entitlements('account="a-1"')]
    assert names == [ENTITLEMENT["name"], "providers/DEMO-unit/entitlements/e-2"]
    assert "filter=account%3D%22a-1%22" in mock.requests[0][1]
    assert "pageToken=t2" in mock.requests[1][1]


def test_request_bodies_follow_the_discovery_document() -> None:
    gw, mock = gateway([_ok({})] * 4 + [_ok(ENTITLEMENT)])
    gw.approve_account("a-1", reason="signed up")
    gw.approve_plan_change("e-1", "pro")
    gw.reject_plan_change("e-1", "pro", "not offered")
    gw.reject_entitlement("e-1", "fraud")
    gw.patch_message_to_user("e-1", "provisioning")
    bodies = [json.loads(r[2]) for r in mock.requests]
    assert bodies == [
        {"approvalName": "signup", "reason": "signed up"},
        {"pendingPlanName": "pro"},
        {"pendingPlanName": "pro", "reason": "not offered"},
        {"reason": "fraud"},
        {"messageToUser": "provisioning"},
    ]
    assert mock.requests[4][0] == "PATCH"
    assert "updateMask=messageToUser" in mock.requests[4][1]


@pytest.mark.parametrize(
    ("status", "name", "kind"),
    [
        (404, "NOT_FOUND", NotFoundError),
        (400, "FAILED_PRECONDITION", FailedPreconditionError),
        (400, "INVALID_ARGUMENT", ProcurementError),
        (408, None, TransientProcurementError),
        (502, None, TransientProcurementError),
        (504, "DEADLINE_EXCEEDED", TransientProcurementError),
    ],
)
def test_classification_of_http_errors(status: int, name: str | None, kind: type) -> None:
    """One table maps HTTP answers to the exception tree; non-JSON bodies are tolerated."""
    content = json.dumps({"error": {"message": "m", "status": name}}) if name else "<html>"
    error = classify_http_error(status, content, action="get_entitlement")
    assert type(error) is kind
    assert error.status_code == status


def test_not_found_is_benign_for_reads_but_not_for_plan_changes() -> None:
    assert benign_outcome(NotFoundError("x", action="get_account")) == "not_found"
    assert benign_outcome(NotFoundError("x", action="approve_plan_change")) is None
