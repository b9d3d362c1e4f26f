"""Every Procurement API v1 method, driven by Google's official client over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError

from marketplace_emulator.server import Emulator
from tests.integration.emulator.conftest import PROVIDER, purchase

pytestmark = pytest.mark.integration
PARENT = f"providers/{PROVIDER}"


def error_of(caught: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(caught.value.content)["error"]
    assert error["code"] == caught.value.status_code
    return error


def approved(api: Any, control: httpx.Client, plan: str = "basic") -> dict[str, Any]:
    bought = purchase(control, plan)
    api.accounts().approve(
        name=bought["account"]["name"], body={"approvalName": "signup"}
    ).execute()
    api.entitlements().approve(name=bought["entitlement"]["name"], body={}).execute()
    return bought


def test_accounts_get_list_approve_reject_reset(api_and_control: Any) -> None:
    api, control = api_and_control
    bought = purchase(control)
    name = bought["account"]["name"]
    account = api.accounts().get(name=name, view="ACCOUNT_VIEW_FULL").execute()
    assert account["state"] == "ACCOUNT_ACTIVE"
    assert account["approvals"][0]["name"] == "signup"
    assert account["approvals"][0]["state"] == "PENDING"
    listed = api.accounts().list(parent=PARENT).execute()
    assert [a["name"] for a in listed["accounts"]] == [name]
    assert api.accounts().reject(name=name, body={"reason": "incomplete"}).execute() == {}
    rejected = api.accounts().get(name=name).execute()["approvals"][0]
    assert (rejected["state"], rejected["reason"]) == ("REJECTED", "incomplete")
    api.accounts().approve(name=name, body={"approvalName": "signup"}).execute()
    assert api.accounts().get(name=name).execute()["approvals"][0]["state"] == "APPROVED"
    assert api.accounts().reset(name=name, body={}).execute() == {}
    assert api.accounts().get(name=name).execute()["approvals"][0]["state"] == "PENDING"
    entitlement = api.entitlements().get(name=bought["entitlement"]["name"]).execute()
    assert entitlement["state"] == "ENTITLEMENT_CANCELLED"


def test_accounts_list_pages_with_next_page_token(api_and_control: Any) -> None:
    api, control = api_and_control
    names = {purchase(control)["account"]["name"] for _ in range(5)}
    seen: list[str] = []
    request = api.accounts().list(parent=PARENT, pageSize=2)
    pages = 0
    while request is not None:
        response = request.execute()
        seen += [a["name"] for a in response.get("accounts", [])]
        pages += 1
        request = api.accounts().list_next(request, response)
    assert (sorted(seen), pages) == (sorted(names), 3)


def test_entitlement_approve_then_get_shows_it_active(api_and_control: Any) -> None:
    api, control = api_and_control
    bought = approved(api, control)
    entitlement = api.entitlements().get(name=bought["entitlement"]["name"]).execute()
    assert entitlement["state"] == "ENTITLEMENT_ACTIVE"
    assert entitlement["account"] == bought["account"]["name"]
    assert entitlement["usageReportingId"].startswith("project_number:")
    assert entitlement["productExternalName"] == "example-product.endpoints.sandbox.cloud.goog"


def test_entitlement_approve_before_the_account_is_a_failed_precondition(
    api_and_control: Any,
) -> None:
    """[unconfirmed] Partners report approval fails until the account's signup is APPROVED."""
    api, control = api_and_control
    bought = purchase(control)
    with pytest.raises(HttpError) as caught:
        api.entitlements().approve(name=bought["entitlement"]["name"], body={}).execute()
    assert error_of(caught)["status"] == "FAILED_PRECONDITION"


def test_entitlement_reject_cancels_it(api_and_control: Any) -> None:
    api, control = api_and_control
    name = purchase(control)["entitlement"]["name"]
    api.entitlements().reject(name=name, body={"reason": "not eligible"}).execute()
    got = api.entitlements().get(name=name).execute()
    assert (got["state"], got["cancellationReason"]) == ("ENTITLEMENT_CANCELLED", "not eligible")


def test_entitlement_list_filters_and_pages(api_and_control: Any) -> None:
    api, control = api_and_control
    active = approved(api, control, "pro")["entitlement"]["name"]
    waiting = [purchase(control)["entitlement"]["name"] for _ in range(3)]
    listed = api.entitlements().list(parent=PARENT, filter="state=active plan=pro").execute()
    assert [e["name"] for e in listed["entitlements"]] == [active]
    seen: list[str] = []
    request = api.entitlements().list(
        parent=PARENT, filter='state="ACTIVATION_REQUESTED" OR plan!=basic', pageSize=2
    )
    while request is not None:
        response = request.execute()
        seen += [e["name"] for e in response["entitlements"]]
        request = api.entitlements().list_next(request, response)
    assert sorted(seen) == sorted([active, *waiting])


def test_entitlement_list_with_a_malformed_filter_is_invalid_argument(
    api_and_control: Any,
) -> None:
    api, _ = api_and_control
    with pytest.raises(HttpError) as caught:
        api.entitlements().list(parent=PARENT, filter="state=active AND (plan=").execute()
    error = error_of(caught)
    assert error["status"] == "INVALID_ARGUMENT"
    assert "expected a value" in error["message"]


def test_entitlement_patch_sets_message_to_user(api_and_control: Any) -> None:
    api, control = api_and_control
    name = purchase(control)["entitlement"]["name"]
    patched = (
        api.entitlements()
        .patch(name=name, updateMask="messageToUser", body={"messageToUser": "Setting up"})
        .execute()
    )
    assert patched["messageToUser"] == "Setting up"
    assert api.entitlements().get(name=name).execute()["messageToUser"] == "Setting up"


def test_plan_change_approve_and_reject(api_and_control: Any) -> None:
    api, control = api_and_control
    name = approved(api, control)["entitlement"]["name"]
    eid = name.rsplit("/", 1)[1]
    control.post(f"/emulator/v1/{PARENT}/entitlements/{eid}:changePlan", json={"plan": "pro"})
    pending = api.entitlements().get(name=name).execute()
    assert pending["newPendingPlan"] == "pro"
    with pytest.raises(HttpError) as caught:
        api.entitlements().approvePlanChange(name=name, body={"pendingPlanName": "gold"}).execute()
    assert error_of(caught)["status"] == "FAILED_PRECONDITION"
    api.entitlements().rejectPlanChange(
        name=name, body={"pendingPlanName": "pro", "reason": "not now"}
    ).execute()
    assert api.entitlements().get(name=name).execute()["plan"] == "basic"
    control.post(f"/emulator/v1/{PARENT}/entitlements/{eid}:changePlan", json={"plan": "pro"})
    api.entitlements().approvePlanChange(name=name, body={"pendingPlanName": "pro"}).execute()
    got = api.entitlements().get(name=name).execute()
    assert (got["state"], got["plan"]) == ("ENTITLEMENT_ACTIVE", "pro")
    assert "newPendingPlan" not in got


def test_suspend_answers_unimplemented(api_and_control: Any) -> None:
    """[unconfirmed] The discovery document says suspend "is not yet supported"."""
    api, control = api_and_control
    name = approved(api, control)["entitlement"]["name"]
    with pytest.raises(HttpError) as caught:
        api.entitlements().suspend(name=name, body={"reason": "abuse"}).execute()
    assert (caught.value.status_code, error_of(caught)["status"]) == (501, "UNIMPLEMENTED")


def test_a_deleted_entitlement_and_account_answer_404(api_and_control: Any) -> None:
    api, control = api_and_control
    bought = approved(api, control)
    name, account = bought["entitlement"]["name"], bought["account"]["name"]
    eid = name.rsplit("/", 1)[1]
    control.post(f"/emulator/v1/{PARENT}/entitlements/{eid}:cancel", json={})
    control.post(f"/emulator/v1/{PARENT}/entitlements/{eid}:delete", json={})
    with pytest.raises(HttpError) as caught:
        api.entitlements().get(name=name).execute()
    assert (caught.value.status_code, error_of(caught)["status"]) == (404, "NOT_FOUND")
    control.post(f"/emulator/v1/{account}:delete", json={})
    with pytest.raises(HttpError) as caught:
        api.accounts().get(name=account).execute()
    assert caught.value.status_code == 404


def test_the_client_works_with_a_trailing_slash_on_the_endpoint(
    live_emulator: Any, emu: Emulator, control: httpx.Client
) -> None:
    """`api_endpoint` given as `http://host:port/` produces the same paths."""
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient.discovery import build

    service = build(
        "cloudcommerceprocurement",
        "v1",
        static_discovery=True,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": live_emulator.url + "/"},
    )
    name = purchase(control)["entitlement"]["name"]
    assert service.providers().entitlements().get(name=name).execute()["name"] == name
    service.close()


@pytest.fixture
def api_and_control(procurement_api: Any, control: httpx.Client) -> tuple[Any, httpx.Client]:
    return procurement_api, control
