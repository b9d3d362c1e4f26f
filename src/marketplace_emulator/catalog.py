"""The emulator's product catalog: what each provider sells and how Google treats it.

Set with `PUT /emulator/v1/providers/{p}/products/{product}` and this body:

    {"serviceName": "...", "autoApprove": false, "planChange": "immediate" | "termEnd",
     "cancellation": "immediate" | "termEnd", "termDays": 30,
     "accountNotifications": "off" | "creation" | "approvals",
     "offerDurationField": "newPendingOfferDuration" | "newOfferDuration",
     "plans": {"<plan>": {"usageBilled": true, "metrics": ["<metric id>", ...], "price": "..."}},
     "offers": {"<offer id>": {"kind": "private" | "standard", "plan": "<plan>",
                               "duration": "P1Y" | "endTime": "...", "startTime": "...",
                               "autoRenew": true, "quoteExternalName": "...",
                               "entitlementBenefitIds": ["..."]}},
     "displayName": "...", "signupUrl": "https://...", "loginUrl": "https://...",
     "signupAudience": "localhost"}

`accountNotifications`: Google sends the account message of a customer's first purchase only "if
you've turned on account notifications for that product" (manage-user-accounts), so a product
defaults to "off"; "creation" sends it; "approvals" also sends an account message each time an
approval of the account changes state (what Google's codelab sample waits for). The default
product has "creation", as the emulator always behaved.

`displayName`, `signupUrl`, `loginUrl`, `signupAudience` and plan `price` are what the buyer's
page (`/marketplace`, storefront/) shows and uses: "Subscribe" posts the sign-up JWT (audience
`signupAudience`, the product's domain) to `signupUrl`, "Manage on provider" to `loginUrl`, as
Producer Portal's frontend integration sets them.

Every provider starts with `DEFAULT_PRODUCTS`, so the sandbox works with no setup. Metric ids follow
the `{plan}_{metric}` template of Google's codelab; Service Control metric names are
`{serviceName}/{metric id}`.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from marketplace_emulator.clock import parse_rfc3339
from marketplace_emulator.procurement.offers import OfferTerms, check_duration, offer_name

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


AccountNotifications = Literal["off", "creation", "approvals"]
LATEST_YEAR = 2999


def check_timestamp(value: str | None) -> str | None:
    """An RFC 3339 timestamp between 1970 and 2999, or ValueError."""
    if value is not None:
        try:
            when = parse_rfc3339(value)
        except OverflowError:
            raise ValueError(f"timestamp out of range: {value!r}") from None
        if not 1970 <= when.year <= LATEST_YEAR:
            raise ValueError(f"timestamp must fall in 1970-{LATEST_YEAR}: {value!r}")
    return value


class OfferSpec(_Model):
    """An offer in the catalog: a private offer (the default) or a public (standard) one."""

    kind: Literal["private", "standard"] = "private"
    plan: str | None = None  # the plan it sells; None: the plan named at purchase
    duration: str | None = None
    start_time: str | None = Field(None, alias="startTime")
    end_time: str | None = Field(None, alias="endTime")
    auto_renew: bool = Field(True, alias="autoRenew")
    quote_external_name: str = Field("", alias="quoteExternalName")
    entitlement_benefit_ids: list[str] = Field(default_factory=list, alias="entitlementBenefitIds")

    _timestamps = field_validator("start_time", "end_time")(check_timestamp)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else check_duration(value)

    @model_validator(mode="after")
    def _one_term(self) -> OfferSpec:
        if self.duration and self.end_time:
            raise ValueError("an offer has a duration or an endTime, not both")
        start, end = self.start_time, self.end_time
        if start and end and parse_rfc3339(end) <= parse_rfc3339(start):
            raise ValueError("endTime must be after startTime")
        return self

    def terms(self, provider_id: str, service_name: str, offer_id: str) -> OfferTerms:
        private = self.kind == "private"
        return OfferTerms(
            name=offer_name(provider_id, service_name, offer_id, private),
            start_time=parse_rfc3339(self.start_time) if self.start_time else None,
            end_time=parse_rfc3339(self.end_time) if self.end_time else None,
            duration=self.duration or "",
            auto_renew=self.auto_renew,
            quote=self.quote_external_name,
            benefit_ids=tuple(self.entitlement_benefit_ids),
            private=private,
        )


class Product(_Model):
    service_name: str = Field(alias="serviceName", min_length=1)
    auto_approve: bool = Field(False, alias="autoApprove")
    plan_change: Literal["immediate", "termEnd"] = Field("immediate", alias="planChange")
    cancellation: Literal["immediate", "termEnd"] = "immediate"
    term_days: int = Field(30, alias="termDays", ge=1, le=3660)
    plans: dict[str, PlanSpec] = Field(min_length=1)
    offers: dict[str, OfferSpec] = Field(default_factory=dict)
    account_notifications: AccountNotifications = Field("off", alias="accountNotifications")
    offer_duration_field: Literal["newPendingOfferDuration", "newOfferDuration"] = Field(
        "newPendingOfferDuration", alias="offerDurationField"
    )
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

    @model_validator(mode="after")
    def _offer_plans(self) -> Product:
        for offer_id, offer in self.offers.items():
            if not offer_id or "/" in offer_id:
                raise ValueError(f"bad offer id {offer_id!r}: no slashes")
            if offer.plan is not None and offer.plan not in self.plans:
                raise ValueError(f"offer {offer_id!r} sells unknown plan {offer.plan!r}")
        return self

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
        account_notifications="creation",
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
