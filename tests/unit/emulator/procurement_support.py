"""Builders shared by the Procurement unit tests: a backend on a fixed clock, recording events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marketplace_emulator.catalog import Catalog, PlanSpec, Product
from marketplace_emulator.clock import Clock
from marketplace_emulator.events import RecordingSink
from marketplace_emulator.procurement.models import ProcurementBackend
from marketplace_emulator.procurement.resources import Entitlement

START = datetime(2030, 1, 1, tzinfo=UTC)
PROVIDER = "DEMO-test"
DAY = 86_400.0


@dataclass
class World:
    backend: ProcurementBackend
    clock: Clock
    sink: RecordingSink
    catalog: Catalog

    def events(self) -> list[str]:
        return [payload["eventType"] for _, payload in self.sink.published]

    def payloads(self) -> list[dict[str, Any]]:
        return [payload for _, payload in self.sink.published]

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.backend.process_due()

    def product(self, product_id: str, **settings: Any) -> None:
        plans = {
            "basic": PlanSpec(usage_billed=True, metrics=["basic_requests"]),
            "pro": PlanSpec(usage_billed=True, metrics=["pro_requests"]),
            "flat": PlanSpec(),
        }
        self.catalog.put(
            PROVIDER, product_id, Product(service_name="svc.test", plans=plans, **settings)
        )

    def buy(self, plan: str = "basic", product: str = "example-product", **kw: Any) -> Entitlement:
        _, entitlement = self.backend.purchase(PROVIDER, product, plan, **kw)
        return entitlement

    def active(self, plan: str = "basic", product: str = "example-product") -> Entitlement:
        """A purchased, approved, ACTIVE entitlement (events so far cleared)."""
        entitlement = self.buy(plan, product)
        self.backend.approve_account(PROVIDER, entitlement.account_id)
        self.backend.approve_entitlement(PROVIDER, entitlement.id)
        self.sink.clear()
        return self.backend.get_entitlement(PROVIDER, entitlement.id)

    def get(self, entitlement: Entitlement) -> Entitlement:
        return self.backend.get_entitlement(PROVIDER, entitlement.id)


def make_world(activation_delay_seconds: float = 0.0) -> World:
    clock = Clock(now=lambda: START)
    sink = RecordingSink()
    catalog = Catalog()
    backend = ProcurementBackend(clock, catalog, sink, activation_delay_seconds)
    return World(backend, clock, sink, catalog)
