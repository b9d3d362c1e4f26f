"""The usage catalog: plans to Service Control metric ids and types, from a TOML or JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketplace_saas.adapters.usage_catalog import (
    SANDBOX_CATALOG,
    CatalogError,
    MetricSpec,
    load_catalog,
    parse_catalog,
    read_catalog_file,
)
from marketplace_saas.config import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "usage-catalog.toml"


def settings(**env: object) -> Settings:
    return Settings(_env_file=None, MARKETPLACE_SANDBOX=True, **env)  # type: ignore[call-arg]


def test_the_shipped_example_matches_the_emulators_default_product() -> None:
    example = read_catalog_file(EXAMPLE, default_service=None)
    sandbox = parse_catalog(SANDBOX_CATALOG, default_service=None, source="sandbox")
    assert example.products == sandbox.products
    product = example.product("example-product")
    assert product is not None
    assert product.service == "example-product.endpoints.sandbox.cloud.goog"
    assert example.plan_metrics(product, "pro") == {
        "requests": MetricSpec("requests", "pro_requests", "int64"),
        "storage_gb": MetricSpec("storage_gb", "pro_storage_gb", "int64"),
    }
    assert example.product("example-product.endpoints.sandbox.cloud.goog") is product


def test_plans_may_override_ids_list_fewer_metrics_or_none(tmp_path: Path) -> None:
    document = {
        "metric_id_template": "{metric}-{plan}",
        "products": {
            "p": {
                "metrics": {"requests": "int64", "cpu": "double"},
                "plans": {
                    "a": {"metrics": ["cpu"], "metric_ids": {"cpu": "cpu_seconds"}},
                    "b": {},
                    "free": {"metrics": []},
                },
            }
        },
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document))
    catalog = load_catalog(
        settings(USAGE_CATALOG=str(path), MARKETPLACE_SERVICE_NAME="svc.example")
    )
    product = catalog.product("p")
    assert product is not None
    assert product.service == "svc.example"
    assert catalog.plan_metrics(product, "a") == {"cpu": MetricSpec("cpu", "cpu_seconds", "double")}
    assert set(catalog.plan_metrics(product, "b")) == {"requests", "cpu"}
    assert catalog.plan_metrics(product, "b")["requests"].metric_id == "requests-b"
    assert catalog.plan_metrics(product, "free") == {}
    assert catalog.plan_metrics(product, "unknown") == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"products": {"p": {"metrics": {"r": "int64"}, "plans": {}}}}, "service is missing"),
        ({"products": {"p": {"service": "s", "metrics": {"r": "float"}}}}, "int64"),
        (
            {
                "products": {
                    "p": {"service": "s", "metrics": {}, "plans": {"a": {"metrics": ["x"]}}}
                }
            },
            "not declared",
        ),
        ({"metric_id_template": "{plan}"}, "metric_id_template"),
    ],
)
def test_an_inconsistent_catalog_is_refused_with_the_offending_key(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(document, default_service=None, source="catalog")


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(settings(USAGE_CATALOG=str(tmp_path / "missing.toml")))
    broken = tmp_path / "broken.toml"
    broken.write_text("products = [")
    with pytest.raises(CatalogError, match="not valid toml"):
        load_catalog(settings(USAGE_CATALOG=str(broken)))


def test_without_a_file_the_sandbox_has_the_default_and_production_has_nothing() -> None:
    assert load_catalog(settings()).product("example-product") is not None
    production = Settings(  # type: ignore[call-arg]
        _env_file=None,
        GOOGLE_CLOUD_PROJECT="p",
        SESSION_SECRET="x" * 40,
        MARKETPLACE_SANDBOX=False,
    )
    assert load_catalog(production).products == {}
