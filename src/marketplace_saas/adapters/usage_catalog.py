"""The usage catalog: which Service Control metric each plan reports, edited by the provider.

A TOML or JSON file named by `USAGE_CATALOG` (see `examples/usage-catalog.toml`):

    metric_id_template = "{plan}_{metric}"           # optional; this is the default

    [products.example-product]
    service = "example-product.endpoints.sandbox.cloud.goog"   # default: MARKETPLACE_SERVICE_NAME
    metrics = { requests = "int64", storage_gb = "int64" }    # the provider's names and types

    [products.example-product.plans.basic]
    metrics = ["requests", "storage_gb"]             # default: every metric of the product

    [products.example-product.plans.pro.metric_ids]  # optional per-plan overrides
    requests = "pro_requests"

A plan listed with `metrics = []` is not usage-billed. Without `USAGE_CATALOG` the sandbox uses
`SANDBOX_CATALOG` (the emulator's default product); outside the sandbox the catalog is empty and
every usage record is refused with a reason naming the missing catalog.
"""

from __future__ import annotations

import json
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from marketplace_saas.config import Settings

ValueType = Literal["int64", "double"]
DEFAULT_TEMPLATE = "{plan}_{metric}"

SANDBOX_CATALOG: dict[str, Any] = {
    "metric_id_template": DEFAULT_TEMPLATE,
    "products": {
        "example-product": {
            "service": "example-product.endpoints.sandbox.cloud.goog",
            "metrics": {"requests": "int64", "storage_gb": "int64"},
            "plans": {"basic": {}, "pro": {}},
        }
    },
}


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or inconsistent; the message says where."""


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the provider's own name, as usage records carry it
    metric_id: str  # the Service Control metric id of this plan
    value_type: ValueType


@dataclass(frozen=True)
class PlanSpec:
    metrics: dict[str, MetricSpec]


@dataclass(frozen=True)
class ProductSpec:
    product_id: str
    service: str
    plans: dict[str, PlanSpec]


@dataclass(frozen=True)
class UsageCatalog:
    products: dict[str, ProductSpec] = field(default_factory=dict)
    source: str = "empty"

    def product(self, *names: str | None) -> ProductSpec | None:
        """The product known by any of `names` (its id, or its service name)."""
        for name in names:
            if not name:
                continue
            if name in self.products:
                return self.products[name]
            for spec in self.products.values():
                if spec.service == name:
                    return spec
        return None

    def plan_metrics(self, product: ProductSpec | None, plan: str) -> dict[str, MetricSpec]:
        """The metrics `plan` reports (empty: the plan is not usage-billed or not listed)."""
        if product is None:
            return {}
        spec = product.plans.get(plan)
        return dict(spec.metrics) if spec else {}


def parse_catalog(
    data: dict[str, Any], *, default_service: str | None, source: str
) -> UsageCatalog:
    """Validate a catalog document; raises `CatalogError` with the offending key."""
    template = data.get("metric_id_template", DEFAULT_TEMPLATE)
    if not isinstance(template, str) or "{metric}" not in template:
        raise CatalogError(f"{source}: metric_id_template must contain '{{metric}}'")
    products_raw = data.get("products", {})
    if not isinstance(products_raw, dict):
        raise CatalogError(f"{source}: 'products' must be a table")
    products: dict[str, ProductSpec] = {}
    for product_id, raw in products_raw.items():
        where = f"{source}: products.{product_id}"
        if not isinstance(raw, dict):
            raise CatalogError(f"{where} must be a table")
        service = raw.get("service", default_service)
        if not isinstance(service, str) or not service:
            raise CatalogError(f"{where}.service is missing (or set MARKETPLACE_SERVICE_NAME)")
        types = raw.get("metrics", {})
        if not isinstance(types, dict) or not all(v in ("int64", "double") for v in types.values()):
            raise CatalogError(f'{where}.metrics must map each metric to "int64" or "double"')
        plans: dict[str, PlanSpec] = {}
        for plan, plan_raw in (raw.get("plans") or {}).items():
            plans[plan] = _plan(f"{where}.plans.{plan}", plan, plan_raw, types, template)
        products[product_id] = ProductSpec(product_id, service, plans)
    return UsageCatalog(products, source)


def _plan(where: str, plan: str, raw: Any, types: dict[str, ValueType], template: str) -> PlanSpec:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where} must be a table")
    names = raw.get("metrics", list(types))
    overrides = raw.get("metric_ids", {})
    if not isinstance(names, list) or not isinstance(overrides, dict):
        raise CatalogError(f"{where}: metrics must be a list and metric_ids a table")
    metrics: dict[str, MetricSpec] = {}
    for name in names:
        if name not in types:
            raise CatalogError(f"{where}: metric {name!r} is not declared in the product's metrics")
        metric_id = overrides.get(name) or template.format(plan=plan, metric=name)
        if not isinstance(metric_id, str) or "/" in metric_id or " " in metric_id:
            raise CatalogError(f"{where}: bad metric id {metric_id!r}")
        metrics[name] = MetricSpec(name, metric_id, types[name])
    return PlanSpec(metrics)


def read_catalog_file(path: Path, *, default_service: str | None) -> UsageCatalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"USAGE_CATALOG {path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"USAGE_CATALOG {path}: not valid {path.suffix[1:]}: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"USAGE_CATALOG {path}: the top level must be a table")
    return parse_catalog(data, default_service=default_service, source=str(path))


_cache: dict[tuple[str, float], UsageCatalog] = {}
_cache_lock = threading.Lock()


def load_catalog(settings: Settings) -> UsageCatalog:
    """The catalog in force: the file (re-read when it changes), the sandbox default, or empty."""
    path = settings.usage_catalog
    if path is None:
        if settings.sandbox:
            return parse_catalog(
                SANDBOX_CATALOG,
                default_service=settings.marketplace_service_name,
                source="sandbox default",
            )
        return UsageCatalog(source="empty (USAGE_CATALOG is not set)")
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise CatalogError(f"USAGE_CATALOG {path}: cannot read ({exc.strerror})") from None
    key = (str(path.resolve()), mtime)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is None:
        cached = read_catalog_file(path, default_service=settings.marketplace_service_name)
        with _cache_lock:
            _cache.clear()
            _cache[key] = cached
    return cached
