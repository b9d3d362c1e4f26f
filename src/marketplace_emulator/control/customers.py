"""Customer actions over HTTP: purchases, plan changes, cancellations, offers, deletions.

POST /emulator/v1/providers/{p}/purchases        {product, plan, account?, usageReportingId?,
                                                   offer?: {name?, startTime?, endTime?}}
POST /emulator/v1/providers/{p}/entitlements/{id}:changePlan          {plan}
                                               :cancelPlanChange | :revertCancellation
                                               :renew | :delete
                                               :cancel                {atTermEnd?}
                                               :endOffer              {cancel?}
POST /emulator/v1/providers/{p}/accounts/{id}:delete
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from marketplace_emulator.clock import parse_rfc3339
from marketplace_emulator.errors import InvalidArgument, NotFound
from marketplace_emulator.procurement.customer import OfferTerms
from marketplace_emulator.procurement.models import ProcurementBackend
from marketplace_emulator.procurement.resources import Entitlement
from marketplace_emulator.procurement.responses import json_body, split_action

M = TypeVar("M", bound=BaseModel)
LATEST_YEAR = 2999

router = APIRouter(prefix="/emulator/v1/providers/{provider}", tags=["customer actions"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Offer(_Body):
    name: str = ""
    start_time: str | None = Field(None, alias="startTime")
    end_time: str | None = Field(None, alias="endTime")

    @field_validator("start_time", "end_time")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                when = parse_rfc3339(value)
            except OverflowError:
                raise ValueError(f"timestamp out of range: {value!r}") from None
            if not 1970 <= when.year <= LATEST_YEAR:
                raise ValueError(f"timestamp must fall in 1970-{LATEST_YEAR}: {value!r}")
        return value

    def terms(self) -> OfferTerms:
        return OfferTerms(
            self.name,
            parse_rfc3339(self.start_time) if self.start_time else None,
            parse_rfc3339(self.end_time) if self.end_time else None,
        )


class Purchase(_Body):
    product: str = Field(min_length=1)
    plan: str = Field(min_length=1)
    account: str | None = Field(None, min_length=1, pattern=r"^[^/:\s]+$")
    usage_reporting_id: str | None = Field(None, alias="usageReportingId", min_length=1)
    offer: Offer | None = None


class ChangePlan(_Body):
    plan: str = Field(min_length=1)


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
    offer = body.offer.terms() if body.offer else None
    account, entitlement = await run_in_threadpool(
        lambda: _procurement(request).purchase(
            provider,
            body.product,
            body.plan,
            account_id=body.account,
            usage_reporting_id=body.usage_reporting_id,
            offer=offer,
        )
    )
    return JSONResponse(
        {"account": account.to_json(), "entitlement": entitlement.to_json()}, status_code=201
    )


def _entitlement_action(
    procurement: ProcurementBackend, provider: str, eid: str, verb: str, body: dict[str, Any]
) -> Callable[[], Entitlement | None] | None:
    if verb == "changePlan":
        plan = parse(ChangePlan, body).plan
        return lambda: procurement.change_plan(provider, eid, plan)
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
    """`:delete`: the customer's account is deleted (its entitlements are cancelled and deleted)."""
    account_id, verb = split_action(segment, "account")
    if verb != "delete":
        raise NotFound(f"Unknown customer action {verb!r} on accounts.")
    parse(Empty, await json_body(request))
    await run_in_threadpool(_procurement(request).delete_account, provider, account_id)
    return JSONResponse({})
