"""Customer actions over HTTP: purchases, plan changes, cancellations, offers, deletions.

POST /emulator/v1/providers/{p}/purchases        {product, plan?, account?, usageReportingId?,
                                                   offerId? | offer?: {name?, startTime?, endTime?,
                                                   duration?, autoRenew?, quoteExternalName?,
                                                   entitlementBenefitIds?},
                                                   inputProperties?, accountInputProperties?,
                                                   resellerParentBillingAccount?}
POST /emulator/v1/providers/{p}/entitlements/{id}:changePlan          {plan?, offerId?}
                                               :cancelPlanChange | :revertCancellation
                                               :renew | :delete
                                               :cancel                {atTermEnd?}
                                               :endOffer              {cancel?}
                                               :migrate               {product, plan?, offerId?}
POST /emulator/v1/providers/{p}/accounts/{id}:delete | :disableBilling
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from marketplace_emulator.catalog import LATEST_YEAR, check_timestamp
from marketplace_emulator.clock import parse_rfc3339
from marketplace_emulator.errors import InvalidArgument, NotFound
from marketplace_emulator.procurement.customer import OfferTerms, PurchaseData
from marketplace_emulator.procurement.models import ProcurementBackend
from marketplace_emulator.procurement.offers import check_duration
from marketplace_emulator.procurement.resources import Entitlement
from marketplace_emulator.procurement.responses import json_body, split_action

M = TypeVar("M", bound=BaseModel)
__all__ = ["LATEST_YEAR", "router"]

router = APIRouter(prefix="/emulator/v1/providers/{provider}", tags=["customer actions"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Offer(_Body):
    name: str = ""
    start_time: str | None = Field(None, alias="startTime")
    end_time: str | None = Field(None, alias="endTime")
    duration: str | None = None
    auto_renew: bool = Field(True, alias="autoRenew")
    quote_external_name: str = Field("", alias="quoteExternalName")
    entitlement_benefit_ids: list[str] = Field(default_factory=list, alias="entitlementBenefitIds")

    _timestamps = field_validator("start_time", "end_time")(check_timestamp)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else check_duration(value)

    def terms(self) -> OfferTerms:
        if self.duration and self.end_time:
            raise InvalidArgument("offer: an offer has a duration or an endTime, not both.")
        return OfferTerms(
            self.name,
            parse_rfc3339(self.start_time) if self.start_time else None,
            parse_rfc3339(self.end_time) if self.end_time else None,
            duration=self.duration or "",
            auto_renew=self.auto_renew,
            quote=self.quote_external_name,
            benefit_ids=tuple(self.entitlement_benefit_ids),
        )


class Purchase(_Body):
    product: str = Field(min_length=1)
    plan: str = ""
    account: str | None = Field(None, min_length=1, pattern=r"^[^/:\s]+$")
    usage_reporting_id: str | None = Field(None, alias="usageReportingId", min_length=1)
    offer: Offer | None = None
    offer_id: str = Field("", alias="offerId")
    input_properties: dict[str, Any] = Field(default_factory=dict, alias="inputProperties")
    account_input_properties: dict[str, Any] = Field(
        default_factory=dict, alias="accountInputProperties"
    )
    reseller_parent_billing_account: str = Field(
        "", alias="resellerParentBillingAccount", pattern=r"^(billingAccounts/[^/\s]+)?$"
    )

    def data(self) -> PurchaseData:
        return PurchaseData(
            input_properties=self.input_properties,
            account_input_properties=self.account_input_properties,
            reseller_parent_billing_account=self.reseller_parent_billing_account,
        )


class ChangePlan(_Body):
    plan: str = ""
    offer_id: str = Field("", alias="offerId")


class Migrate(_Body):
    product: str = Field(min_length=1)
    plan: str = ""
    offer_id: str = Field("", alias="offerId")


class Cancel(_Body):
    at_term_end: bool | None = Field(None, alias="atTermEnd")


class EndOffer(_Body):
    cancel: bool = False


class Empty(_Body):
    pass


def parse(model: type[M], body: dict[str, Any]) -> M:
    """Validate a control request body; problems answer 400 INVALID_ARGUMENT naming each one."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise InvalidArgument(f"Invalid request: {problems}") from None


def _procurement(request: Request) -> ProcurementBackend:
    return cast(ProcurementBackend, request.app.state.emulator.procurement)


@router.post("/purchases")
async def purchase(request: Request, provider: str) -> JSONResponse:
    """A customer buys a plan: `{account, entitlement}` as the Procurement API shows them."""
    body = parse(Purchase, await json_body(request))
    if not body.plan and not body.offer_id:
        raise InvalidArgument("Invalid request: plan: give a plan, or an offerId that sells one.")
    if body.offer is not None and body.offer_id:
        raise InvalidArgument("Invalid request: give offer or offerId, not both.")
    offer = body.offer.terms() if body.offer else None
    account, entitlement = await run_in_threadpool(
        lambda: _procurement(request).purchase(
            provider,
            body.product,
            body.plan,
            account_id=body.account,
            usage_reporting_id=body.usage_reporting_id,
            offer=offer,
            offer_id=body.offer_id,
            data=body.data(),
        )
    )
    return JSONResponse(
        {"account": account.to_json(), "entitlement": entitlement.to_json()}, status_code=201
    )


def _entitlement_action(
    procurement: ProcurementBackend, provider: str, eid: str, verb: str, body: dict[str, Any]
) -> Callable[[], Entitlement | None] | None:
    if verb == "changePlan":
        change = parse(ChangePlan, body)
        if not change.plan and not change.offer_id:
            raise InvalidArgument("Invalid request: plan: give a plan, or an offerId.")
        return lambda: procurement.change_plan(provider, eid, change.plan, change.offer_id)
    if verb == "migrate":
        move = parse(Migrate, body)
        return lambda: procurement.migrate(provider, eid, move.product, move.plan, move.offer_id)
    if verb == "cancel":
        at_term_end = parse(Cancel, body).at_term_end
        return lambda: procurement.cancel(provider, eid, at_term_end)
    if verb == "endOffer":
        cancel = parse(EndOffer, body).cancel
        return lambda: procurement.end_offer(provider, eid, cancel)
    simple: dict[str, Callable[[str, str], Entitlement | None]] = {
        "cancelPlanChange": procurement.cancel_plan_change,
        "revertCancellation": procurement.revert_cancellation,
        "renew": procurement.renew,
        "delete": procurement.delete_entitlement,
    }
    action = simple.get(verb)
    if action is None:
        return None
    parse(Empty, body)
    return lambda: action(provider, eid)


@router.post("/entitlements/{segment}")
async def entitlement_action(request: Request, provider: str, segment: str) -> JSONResponse:
    """Customer actions on one entitlement; answers the entitlement afterwards (`{}` on delete)."""
    entitlement_id, verb = split_action(segment, "entitlement")
    body = await json_body(request)
    call = _entitlement_action(_procurement(request), provider, entitlement_id, verb, body)
    if call is None:
        raise NotFound(f"Unknown customer action {verb!r} on entitlements.")
    result = await run_in_threadpool(call)
    return JSONResponse(result.to_json() if result is not None else {})


@router.post("/accounts/{segment}")
async def account_action(request: Request, provider: str, segment: str) -> JSONResponse:
    """`:delete`: the customer's account is deleted (its entitlements are cancelled and deleted).
    `:disableBilling`: its entitlements are cancelled (`billing-disabled`); answers them."""
    account_id, verb = split_action(segment, "account")
    if verb not in ("delete", "disableBilling"):
        raise NotFound(f"Unknown customer action {verb!r} on accounts.")
    parse(Empty, await json_body(request))
    procurement = _procurement(request)
    if verb == "disableBilling":
        ended = await run_in_threadpool(procurement.disable_billing, provider, account_id)
        return JSONResponse({"entitlements": [e.to_json() for e in ended]})
    await run_in_threadpool(procurement.delete_account, provider, account_id)
    return JSONResponse({})
