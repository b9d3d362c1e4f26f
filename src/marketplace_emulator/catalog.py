"""The emulator's product catalog: what each provider sells and how Google treats it.

Set with `PUT /emulator/v1/providers/{p}/products/{product}` and this body:

    {"serviceName": "...", "autoApprove": false, "planChange": "immediate" | "termEnd",
     "cancellation": "immediate" | "termEnd", "termDays": 30,
     "plans": {"<plan>": {"usageBilled": true, "metrics": ["<metric id>", ...], "price": "..."}},
     "displayName": "...", "signupUrl": "https://...", "loginUrl": "https://...",
     "signupAudience": "localhost"}

The last four and `price` are what the buyer's page (`/marketplace`, storefront/) shows and uses:
"Subscribe" posts the sign-up JWT (audience `signupAudience`, the product's domain) to `signupUrl`,
"Manage on provider" to `loginUrl`, as Producer Portal's frontend integration sets them.

Every provider starts with `DEFAULT_PRODUCTS`, so the sandbox works with no setup. Metric ids follow
the `{plan}_{metric}` template of Google's codelab; Service Control metric names are
`{serviceName}/{metric id}`.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PRODUCT_ID = "example-product"
DEFAULT_SERVICE_NAME = "example-product.endpoints.sandbox.cloud.goog"
DEFAULT_METRICS = ("requests", "storage_gb")
DEFAULT_PLANS = ("basic", "pro")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PlanSpec(_Model):
    usage_billed: bool = Field(False, alias="usageBilled")
    metrics: list[str] = Field(default_factory=list)
    price: str = Field("", max_length=200)  # shown to buyers, e.g. "$10 per month + usage"

    @field_validator("metrics")
    @classmethod
    def _metric_ids(cls, value: list[str]) -> list[str]:
        for metric in value:
            if not metric or "/" in metric or metric.strip() != metric:
                raise ValueError(f"bad metric id {metric!r}: no slashes or spaces")
        if len(set(value)) != len(value):
            raise ValueError("metric ids must be unique within a plan")
        return value


class Product(_Model):
    service_name: str = Field(alias="serviceName", min_length=1)
    auto_approve: bool = Field(False, alias="autoApprove")
    plan_change: Literal["immediate", "termEnd"] = Field("immediate", alias="planChange")
    cancellation: Literal["immediate", "termEnd"] = "immediate"
    term_days: int = Field(30, alias="termDays", ge=1, le=3660)
    plans: dict[str, PlanSpec] = Field(min_length=1)
    display_name: str = Field("", alias="displayName", max_length=200)
    signup_url: str = Field("", alias="signupUrl")
    login_url: str = Field("", alias="loginUrl")
    signup_audience: str = Field("localhost", alias="signupAudience", min_length=1)

    @field_validator("signup_url", "login_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL: {value!r}")
        return value

    def metric_names(self, plan: str) -> set[str]:
        """Fully qualified Service Control metric names declared for one plan."""
        spec = self.plans.get(plan)
        return {f"{self.service_name}/{m}" for m in spec.metrics} if spec else set()

    def to_json(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


DEFAULT_PRICES = {"basic": "$10 per month + usage", "pro": "$50 per month + usage"}


def default_product() -> Product:
    return Product(
        service_name=DEFAULT_SERVICE_NAME,
        display_name="Example product",
        plans={
            plan: PlanSpec(
                usage_billed=True,
                metrics=[f"{plan}_{m}" for m in DEFAULT_METRICS],
                price=DEFAULT_PRICES[plan],
            )
            for plan in DEFAULT_PLANS
        },
    )


class Catalog:
    """Products per provider; a provider seen for the first time gets the default catalog."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._products: dict[str, dict[str, Product]] = {}

    def products(self, provider_id: str) -> dict[str, Product]:
        with self._lock:
            return dict(self._ensure(provider_id))

    def get(self, provider_id: str, product_id: str) -> Product | None:
        with self._lock:
            return self._ensure(provider_id).get(product_id)

    def put(self, provider_id: str, product_id: str, product: Product) -> None:
        with self._lock:
            self._ensure(provider_id)[product_id] = product

    def by_service(self, service_name: str) -> list[tuple[str, str, Product]]:
        """Every (provider, product id, product) whose Service Control service is `service_name`."""
        with self._lock:
            return [
                (provider, product_id, product)
                for provider, products in self._products.items()
                for product_id, product in products.items()
                if product.service_name == service_name
            ]

    def reset(self) -> None:
        with self._lock:
            self._products.clear()

    def dump(self) -> dict[str, dict[str, dict[str, object]]]:
        """Every provider's products as JSON (persistence)."""
        with self._lock:
            return {
                provider: {name: product.to_json() for name, product in products.items()}
                for provider, products in self._products.items()
            }

    def load(self, data: dict[str, dict[str, dict[str, object]]]) -> None:
        """Replace the catalog with what `dump()` gave."""
        products = {
            provider: {name: Product.model_validate(spec) for name, spec in items.items()}
            for provider, items in data.items()
        }
        with self._lock:
            self._products = products

    def _ensure(self, provider_id: str) -> dict[str, Product]:
        if provider_id not in self._products:
            self._products[provider_id] = {DEFAULT_PRODUCT_ID: default_product()}
        return self._products[provider_id]
