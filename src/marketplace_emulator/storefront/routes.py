"""The buyer's page's routes (see `storefront/__init__.py`): rendering only, no state of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from marketplace_emulator.catalog import DEFAULT_PRODUCT_ID, Product
from marketplace_emulator.clock import rfc3339
from marketplace_emulator.procurement import resources as r

if TYPE_CHECKING:
    from marketplace_emulator.server import Emulator

router = APIRouter(prefix="/marketplace", tags=["buyer's page"], include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent))
MAX_ORDERS = 50
DEFAULT_PROVIDER = "DEMO-sandbox"

# What the buyer may do in each state (Google's UI offers the same actions).
CAN_CHANGE_PLAN = frozenset({r.ACTIVE})
CAN_CANCEL = frozenset({r.ACTIVATION_REQUESTED, *r.IN_SERVICE}) - {r.PENDING_CANCELLATION}


@dataclass(frozen=True)
class Order:
    entitlement: r.Entitlement
    product: Product | None

    @property
    def product_name(self) -> str:
        if self.product is not None and self.product.display_name:
            return self.product.display_name
        return self.entitlement.product

    @property
    def state(self) -> str:
        return self.entitlement.state.removeprefix("ENTITLEMENT_").replace("_", " ").lower()

    @property
    def other_plans(self) -> list[str]:
        plans = self.product.plans if self.product is not None else {}
        return [plan for plan in plans if plan != self.entitlement.plan]

    @property
    def can_change_plan(self) -> bool:
        return self.entitlement.state in CAN_CHANGE_PLAN and bool(self.other_plans)

    @property
    def can_cancel(self) -> bool:
        return self.entitlement.state in CAN_CANCEL

    @property
    def can_manage(self) -> bool:
        return self.entitlement.state != r.CANCELLED

    @property
    def offer_end(self) -> str:
        end = self.entitlement.offer_end_time
        return rfc3339(end)[:16].replace("T", " ") if end is not None else ""


def _emulator(request: Request) -> Emulator:
    return cast("Emulator", request.app.state.emulator)


@router.get("")
def first_provider(request: Request) -> Response:
    providers = _emulator(request).providers or [DEFAULT_PROVIDER]
    return RedirectResponse(f"/marketplace/{providers[0]}", status_code=307)


@router.get("/{provider}", response_class=HTMLResponse)
def page(request: Request, provider: str) -> Response:
    emulator = _emulator(request)
    products = sorted(emulator.catalog.products(provider).items())
    catalog = dict(products)
    orders = [
        Order(e, catalog.get(e.product))
        for e in reversed(emulator.procurement.entitlements(provider))
    ][:MAX_ORDERS]
    upcoming = emulator.procurement.next_transition_time()
    context: dict[str, Any] = {
        "provider": provider,
        "providers": emulator.providers,
        "products": products,
        "default_product": DEFAULT_PRODUCT_ID,
        "orders": orders,
        "now": rfc3339(emulator.clock.now())[:19].replace("T", " "),
        "upcoming": rfc3339(upcoming)[:19].replace("T", " ") if upcoming else "",
    }
    return templates.TemplateResponse(request, "page.html", context)
