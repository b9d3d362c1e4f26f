"""Emulator housekeeping over HTTP: the clock, the product catalog, reset, and what was published.

GET  /emulator/v1/status                                version, delivery modes, clock
GET  /emulator/v1/clock        POST /emulator/v1/clock:advance {seconds}
GET  /emulator/v1/providers/{p}/products
PUT  /emulator/v1/providers/{p}/products/{product}      body: catalog.Product JSON
POST /emulator/v1/reset
GET  /emulator/v1/notifications[?provider=ID]
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from pydantic import Field, field_validator
from starlette.concurrency import run_in_threadpool

from marketplace_emulator import __version__
from marketplace_emulator.catalog import Product
from marketplace_emulator.clock import rfc3339
from marketplace_emulator.control.customers import LATEST_YEAR, _Body, parse
from marketplace_emulator.errors import InvalidArgument
from marketplace_emulator.procurement.responses import json_body

if TYPE_CHECKING:
    from marketplace_emulator.server import Emulator

router = APIRouter(prefix="/emulator/v1", tags=["emulator"])

MAX_ADVANCE_SECONDS = 100 * 366 * 86_400


class Advance(_Body):
    seconds: float = Field(ge=0, le=MAX_ADVANCE_SECONDS)

    @field_validator("seconds")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("seconds must be a finite number")
        return value


def _emulator(request: Request) -> Emulator:
    return cast("Emulator", request.app.state.emulator)


def _clock(emulator: Emulator) -> dict[str, Any]:
    now = emulator.clock.now()
    upcoming = emulator.procurement.next_transition_time()
    out: dict[str, Any] = {"now": rfc3339(now)}
    if upcoming is not None:
        out["nextTransitionTime"] = rfc3339(upcoming)
    return out


@router.get("/status")
def status(request: Request) -> dict[str, Any]:
    """Version, Pub/Sub project, push endpoint, delivery modes, providers and the clock."""
    emulator = _emulator(request)
    return {
        "version": __version__,
        "pubsubProject": emulator.pubsub_project,
        "pushEndpoint": emulator.push_endpoint,
        "deliveryModes": emulator.notifier.modes,
        "providers": emulator.providers,
        "clock": _clock(emulator),
    }


@router.get("/clock")
def get_clock(request: Request) -> dict[str, Any]:
    """The emulator's time (`now`) and when the next transition falls due (`nextTransitionTime`)."""
    return _clock(_emulator(request))


@router.post("/clock:advance")
async def advance_clock(request: Request) -> dict[str, Any]:
    """Move the clock forward; due transitions happen in order and publish their notifications."""
    body = parse(Advance, await json_body(request))
    emulator = _emulator(request)
    if (emulator.clock.now() + timedelta(seconds=body.seconds)).year > LATEST_YEAR:
        raise InvalidArgument(f"The clock cannot move past the year {LATEST_YEAR}.")
    await run_in_threadpool(emulator.advance_clock, body.seconds)
    return _clock(emulator)


@router.get("/providers/{provider}/products")
def list_products(request: Request, provider: str) -> dict[str, Any]:
    """The provider's catalog: `{products: {id: Product JSON}}`."""
    products = _emulator(request).catalog.products(provider)
    return {"products": {name: product.to_json() for name, product in sorted(products.items())}}


@router.put("/providers/{provider}/products/{product}")
async def put_product(request: Request, provider: str, product: str) -> dict[str, Any]:
    """Add or replace a product; the body is the catalog's Product JSON."""
    spec = parse(Product, await json_body(request))
    _emulator(request).catalog.put(provider, product, spec)
    return spec.to_json()


@router.post("/reset")
async def reset(request: Request) -> dict[str, Any]:
    """Forget every account, entitlement, report, notification, product and fault."""
    await run_in_threadpool(_emulator(request).reset)
    return {}


@router.get("/notifications")
def notifications(request: Request, provider: str | None = None) -> dict[str, Any]:
    """Every notification published since the last reset, oldest first."""
    return {"notifications": _emulator(request).notifications(provider)}
