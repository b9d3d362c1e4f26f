"""Bulk seeding over HTTP, a control/testing aid for benchmarks and tests.

POST /emulator/v1/providers/{p}/seed  {count, product?, plan?, state?, accountPrefix?}
  -> {"count": N, "accounts": [id, ...], "entitlements": [id, ...]}

N accounts, each with one entitlement in `state` (ACTIVE by default; ACTIVATION_REQUESTED,
PENDING_CANCELLATION and CANCELLED too), made in one step and without publishing a notification.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from marketplace_emulator.control.customers import _Body, _procurement, parse
from marketplace_emulator.procurement.responses import json_body
from marketplace_emulator.procurement.seeding import SEED_MAX

router = APIRouter(prefix="/emulator/v1/providers/{provider}", tags=["testing aids"])


class Seed(_Body):
    count: int = Field(ge=0, le=SEED_MAX)
    product: str = Field("example-product", min_length=1)
    plan: str = ""
    state: str = "ACTIVE"
    account_prefix: str = Field("", alias="accountPrefix", pattern=r"^[^/:\s]*$")


@router.post("/seed")
async def seed(request: Request, provider: str) -> JSONResponse:
    """Create `count` accounts and entitlements in `state`, silently (see the module docstring)."""
    body = parse(Seed, await json_body(request))
    seeded = await run_in_threadpool(
        lambda: _procurement(request).seed(
            provider,
            body.count,
            product_id=body.product,
            plan=body.plan,
            state=body.state,
            account_prefix=body.account_prefix,
        )
    )
    return JSONResponse(
        {
            "count": len(seeded),
            "accounts": [s.account_id for s in seeded],
            "entitlements": [s.entitlement_id for s in seeded],
        },
        status_code=201,
    )
