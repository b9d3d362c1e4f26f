"""The go-live check behind `marketplace-saas doctor`: read-only, one line per check, each a pass or
a fail with the fix. `serve` runs the first few (`preflight`) before it starts outside the sandbox.

    settings        valid, safe, not the sandbox
    credentials     load, and get an access token for each API's scope
    provider        the Procurement API answers `accounts.list` for MARKETPLACE_PROVIDER_ID
    subscription    exists, on projects/cloudcommerceproc-prod/topics/{providerId}
    service control `services.check` of every metric of the usage catalog, for a dry consumer
                    with `skipActivationCheck`: the service and each metric must be known
    database        reachable, and at the latest migration
    sign-up         SIGNUP_AUDIENCE set; SIGNUP_CERTS_URL serves certificates
    push            when notifications are pushed: PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT set, and
                    matching the subscription's OIDC settings

Nothing here writes: no subscription is created, no migration run, no approval made. Whether
Google's `services.check` refuses an undeclared metric for a dry consumer (rather than ignoring
it) is not confirmed; the emulator refuses it with 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import requests
from google.api_core import exceptions as google_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request as AuthRequest
from pydantic import ValidationError

from marketplace_saas.adapters import pubsub
from marketplace_saas.adapters.credentials import (
    PROCUREMENT_SCOPES,
    SERVICECONTROL_SCOPES,
    CredentialsError,
    GoogleCredentials,
)
from marketplace_saas.adapters.db import migrate
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.adapters.procurement_errors import (
    ProcurementError,
    TransientProcurementError,
)
from marketplace_saas.adapters.servicecontrol import ServiceControlError, ServiceControlGateway
from marketplace_saas.adapters.usage_catalog import CatalogError, load_catalog
from marketplace_saas.config import ConfigurationError, Settings

DRY_CONSUMER = "project:marketplace-saas-doctor"


@dataclass(frozen=True)
class Check:
    """One line of the report. `transient`: Google could not answer now (429, 5xx, a timeout),
    which is no verdict on the configuration: `doctor` reports it, `serve` starts anyway."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    transient: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def check_settings(load: Callable[[], Settings]) -> tuple[Check, Settings | None]:
    try:
        settings = load()
    except (ConfigurationError, ValidationError) as exc:
        text = str(exc).replace("\n", " ")
        return _failed("settings", text, "correct the variables named above"), None
    if settings.sandbox:
        return _failed(
            "settings",
            "the sandbox is on (no GOOGLE_CLOUD_PROJECT or MARKETPLACE_SANDBOX=1)",
            "set GOOGLE_CLOUD_PROJECT and MARKETPLACE_SANDBOX=0",
        ), settings
    return _passed("settings", f"valid and safe, provider {settings.provider_id}"), settings


def check_credentials(credentials: GoogleCredentials) -> Check:
    try:
        with requests.Session() as session:
            for scopes in (PROCUREMENT_SCOPES, SERVICECONTROL_SCOPES):
                scoped = credentials.scoped(scopes)
                scoped.refresh(AuthRequest(session))  # type: ignore[no-untyped-call]
    except CredentialsError as exc:
        return _failed("credentials", str(exc), "set GOOGLE_APPLICATION_CREDENTIALS to a key file")
    except auth_exceptions.GoogleAuthError as exc:
        return _failed(
            "credentials",
            f"no access token for {' '.join(scopes)}: {exc.args[0] if exc.args else exc}",
            "give the service account access to the APIs (Producer Portal links it to your "
            "provider), or use a key allowed these scopes",
        )
    return _passed("credentials", f"{credentials.describe()} gets tokens for both APIs")


def check_provider(settings: Settings, credentials: GoogleCredentials) -> Check:
    gateway = ProcurementGateway(
        settings, credentials=credentials.scoped(PROCUREMENT_SCOPES), max_attempts=2
    )
    try:
        next(iter(gateway.list_accounts()), None)
    except TransientProcurementError as exc:
        return Check(
            "provider",
            False,
            f"accounts.list for providers/{settings.provider_id} could not be answered now: {exc}",
            "run the check again; Google answered a transient error, not a verdict",
            transient=True,
        )
    except (ProcurementError, CredentialsError) as exc:
        return _failed(
            "provider",
            f"accounts.list for providers/{settings.provider_id} failed: {exc}",
            "set MARKETPLACE_PROVIDER_ID to the id your Partner Engineer gave you, and make sure "
            "the service account is linked to it",
        )
    finally:
        gateway.close()
    return _passed("provider", f"providers/{settings.provider_id} answers accounts.list")


def check_subscription(settings: Settings, subscriber: Any) -> tuple[Check, Any]:
    path, topic = settings.subscription_path, settings.topic_path
    try:
        found = subscriber.get_subscription(request={"subscription": path})
    except google_exceptions.NotFound:
        return _failed(
            "subscription",
            f"{path} does not exist",
            "run `marketplace-saas pubsub create-subscription`",
        ), None
    except google_exceptions.GoogleAPIError as exc:
        return _failed(
            "subscription", f"cannot read {path}: {exc}", "grant the service account Pub/Sub Viewer"
        ), None
    if found.topic != topic:
        other = found.topic.rsplit("/", 1)[-1]
        return _failed(
            "subscription",
            f"{path} is on {found.topic} (provider {other}), not on {topic}",
            "recreate the subscription on your provider's topic, or correct "
            "MARKETPLACE_PROVIDER_ID / MARKETPLACE_SUBSCRIPTION",
        ), found
    return _passed("subscription", f"{path} is on {topic}"), found


def _metric_sets(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """service -> one zero MetricValueSet for each metric id the catalog reports to it."""
    catalog = load_catalog(settings)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for product in catalog.products.values():
        for plan in product.plans.values():
            for spec in plan.metrics.values():
                name = f"{product.service}/{spec.metric_id}"
                value = {"int64Value": "0"} if spec.value_type == "int64" else {"doubleValue": 0}
                found.setdefault(product.service, {})[name] = {
                    "metricName": name,
                    "metricValues": [value],
                }
    return {service: list(sets.values()) for service, sets in found.items()}


def check_service_control(settings: Settings, credentials: GoogleCredentials) -> Check:
    try:
        services = _metric_sets(settings)
    except CatalogError as exc:
        return _failed("service control", str(exc), "correct USAGE_CATALOG")
    if not services:
        return _passed(
            "service control", "no usage catalog (USAGE_CATALOG unset): nothing to report"
        )
    gateway = ServiceControlGateway(
        settings, credentials=credentials.scoped(SERVICECONTROL_SCOPES), max_attempts=2
    )
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        for service, metric_sets in services.items():
            operation = {
                "operationId": str(uuid.uuid4()),
                "operationName": "marketplace-saas doctor",
                "consumerId": DRY_CONSUMER,
                "startTime": now,
                "metricValueSets": metric_sets,
            }
            answer = gateway.check(service, operation, skip_activation_check=True)
            dry_errors = [str(e.get("code")) for e in answer.get("checkErrors", [])]
    except (ServiceControlError, CredentialsError) as exc:
        return _failed(
            "service control",
            f"services.check for {service} failed: {exc}",
            "set MARKETPLACE_SERVICE_NAME (or the catalog's `service`) to the service name in "
            "Producer Portal, and the catalog's metric ids to the metrics declared there",
        )
    finally:
        gateway.close()
    count = sum(len(sets) for sets in services.values())
    noted = f" (for the dry consumer: {', '.join(dry_errors)})" if dry_errors else ""
    return _passed(
        "service control", f"{', '.join(services)} knows all {count} catalog metrics{noted}"
    )


def check_database(settings: Settings) -> Check:
    try:
        current = migrate.revision_of(settings.database_url)
        head = migrate.head_revision()
    except FileNotFoundError as missing:
        # Connecting would create the file: say it is missing instead.
        return _failed("database", f"{missing} does not exist", "run `marketplace-saas db upgrade`")
    except Exception as exc:  # any driver error: the line must say it, not crash the report
        return _failed(
            "database", f"unreachable: {type(exc).__name__}: {exc}", "check DATABASE_URL"
        )
    if current != head:
        return _failed(
            "database",
            f"at migration {current or 'none'}, not {head}",
            "run `marketplace-saas db upgrade`",
        )
    return _passed("database", f"reachable, at migration {head}")


def check_signup(settings: Settings, client: httpx.Client) -> Check:
    if not settings.signup_audience:
        return _failed(
            "sign-up",
            "SIGNUP_AUDIENCE is not set: every sign-up token would be refused",
            "set SIGNUP_AUDIENCE to your sign-up URL's host, as in Producer Portal",
        )
    try:
        response = client.get(settings.signup_certs_url)
        keys = response.json() if response.is_success else None
        reason = f"HTTP {response.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        keys, reason = None, f"{type(exc).__name__}: {exc}"
    if not keys:
        return _failed(
            "sign-up",
            f"SIGNUP_CERTS_URL {settings.signup_certs_url} serves no certificates ({reason})",
            "leave SIGNUP_CERTS_URL unset (Google's) or correct it",
        )
    return _passed("sign-up", f"audience {settings.signup_audience}, certificates served")


def check_push(settings: Settings, subscription: Any, pushed: bool) -> Check:
    config = getattr(subscription, "push_config", None)
    endpoint = getattr(config, "push_endpoint", "") if config is not None else ""
    if not (pushed or endpoint):
        return _passed("push", "notifications are pulled: the push endpoint is not used")
    if not settings.push_audience or not settings.push_service_account:
        return _failed(
            "push",
            "notifications are pushed but PUSH_AUDIENCE or PUSH_SERVICE_ACCOUNT is not set: "
            "anyone could post to /pubsub/push",
            "set PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT to the subscription's OIDC settings",
        )
    oidc = getattr(config, "oidc_token", None)
    if endpoint and oidc is not None and oidc.service_account_email:
        audience = oidc.audience or endpoint
        wanted = (settings.push_audience, settings.push_service_account)
        if (audience, oidc.service_account_email) != wanted:
            return _failed(
                "push",
                f"the subscription signs for {oidc.service_account_email} / {audience}, the "
                f"settings expect {wanted[1]} / {wanted[0]}",
                "make PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT match the subscription",
            )
    return _passed(
        "push", f"OIDC required: {settings.push_service_account} for {settings.push_audience}"
    )


@dataclass
class Doctor:
    """Runs the checks; `subscriber` and `http` may be given (tests), else they are made here."""

    load: Callable[[], Settings] = Settings
    pushed: bool = False
    subscriber: Any = None
    http: httpx.Client | None = None

    def run(self) -> list[Check]:
        return list(self._checks())

    def _checks(self) -> Iterator[Check]:
        check, settings = check_settings(self.load)
        yield check
        if settings is None:
            return
        credentials = GoogleCredentials(settings)
        access = check_credentials(credentials)
        yield access
        if access.ok:
            yield check_provider(settings, credentials)
        subscriber = self.subscriber or pubsub.subscriber_client(settings)
        try:
            found, subscription = check_subscription(settings, subscriber)
        finally:
            if self.subscriber is None:
                with suppress(Exception):
                    subscriber.close()
        yield found
        if access.ok:
            yield check_service_control(settings, credentials)
        yield check_database(settings)
        http = self.http or httpx.Client(timeout=10.0)
        try:
            yield check_signup(settings, http)
        finally:
            if self.http is None:
                http.close()
        yield check_push(settings, subscription, self.pushed)


def preflight(settings: Settings, *, pull: bool) -> list[Check]:
    """What `serve` refuses to start without, outside the sandbox: the failed checks among
    credentials, provider and (when it pulls) the subscription's topic. Nothing is written
    before these pass."""
    credentials = GoogleCredentials(settings)
    access = check_credentials(credentials)
    if not access.ok:
        return [access]
    # A transient answer (Google overloaded, a replica restarting into a 429) is no reason to
    # stay down: only a verdict on the configuration stops the start.
    failed = [c for c in [check_provider(settings, credentials)] if not c.ok and not c.transient]
    if pull:
        subscriber = pubsub.subscriber_client(settings)
        try:
            found, _ = check_subscription(settings, subscriber)
        finally:
            with suppress(Exception):
                subscriber.close()
        failed += [found] if not found.ok else []
    return failed
