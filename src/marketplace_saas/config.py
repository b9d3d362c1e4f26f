"""One validated settings object, read from the environment or a `.env` file.

Variable names are the contract of DESIGN.md ("Configuration"). Outside the sandbox the settings
refuse unsafe defaults (no project, a short session secret); the web app (`serve`) also refuses
to start without SESSION_SECRET (`require_session_secret`), which the other commands do not need.
`describe_invalid(error)` turns pydantic's validation error into the project's own sentences.
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from marketplace_saas.domain.signup import (
    DEFAULT_FIELDS,
    FormField,
    InvalidFieldConfig,
    load_fields,
    parse_fields,
)

SANDBOX_PROJECT = "sandbox"
CLOUD_COMMERCE_PARTNER_ISS = (
    "https://www.googleapis.com/robot/v1/metadata/x509/"
    "cloud-commerce-partner@system.gserviceaccount.com"
)

GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


@functools.cache
def _process_secret() -> str:
    return secrets.token_urlsafe(32)


class ConfigurationError(ValueError):
    """The configuration is unusable; the message says which variable and why."""


SESSION_SECRET_RULE = "SESSION_SECRET must be set to at least 32 random characters"  # noqa: S105


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    google_cloud_project: str | None = Field(None, alias="GOOGLE_CLOUD_PROJECT")
    marketplace_provider_id: str | None = Field(None, alias="MARKETPLACE_PROVIDER_ID")
    marketplace_subscription: str = Field("codelab", alias="MARKETPLACE_SUBSCRIPTION")
    database_url: str = Field("sqlite:///marketplace.db", alias="DATABASE_URL")
    procurement_api_endpoint: str | None = Field(None, alias="PROCUREMENT_API_ENDPOINT")
    service_control_api_endpoint: str | None = Field(None, alias="SERVICE_CONTROL_API_ENDPOINT")
    pubsub_emulator_host: str | None = Field(None, alias="PUBSUB_EMULATOR_HOST")
    marketplace_service_name: str | None = Field(None, alias="MARKETPLACE_SERVICE_NAME")
    signup_audience: str | None = Field(None, alias="SIGNUP_AUDIENCE")
    signup_certs_url: str = Field(CLOUD_COMMERCE_PARTNER_ISS, alias="SIGNUP_CERTS_URL")
    # The sign-up form's fields (docs/signup.md): JSON in SIGNUP_FIELDS, or a .json/.toml file in
    # SIGNUP_FIELDS_FILE (not both); by default name, work email and company.
    signup_fields: Annotated[tuple[FormField, ...], NoDecode] = Field(
        DEFAULT_FIELDS, alias="SIGNUP_FIELDS"
    )
    signup_fields_file: Path | None = Field(None, alias="SIGNUP_FIELDS_FILE")
    # Where the login URL sends a recognised customer (the provider's product); sandbox: /welcome.
    product_url: str = Field("/welcome", alias="PRODUCT_URL", min_length=1)
    approval_policy: Literal["signup", "auto", "manual"] = Field("signup", alias="APPROVAL_POLICY")
    plan_change_policy: Literal["auto", "manual"] = Field("auto", alias="PLAN_CHANGE_POLICY")
    usage_api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, alias="USAGE_API_TOKENS"
    )
    # Metering (docs/metering.md): the catalog file, when a window is due, late records, zeros.
    usage_catalog: Path | None = Field(None, alias="USAGE_CATALOG")
    usage_grace_seconds: int = Field(300, alias="USAGE_GRACE_SECONDS", ge=0, le=86_400)
    usage_late_policy: Literal["carry", "reject"] = Field("carry", alias="USAGE_LATE_POLICY")
    usage_report_zero: bool = Field(True, alias="USAGE_REPORT_ZERO")
    usage_max_batch: int = Field(10_000, alias="USAGE_MAX_BATCH", ge=1, le=100_000)
    marketplace_sandbox: bool | None = Field(None, alias="MARKETPLACE_SANDBOX")
    google_application_credentials: Path | None = Field(
        None, alias="GOOGLE_APPLICATION_CREDENTIALS"
    )
    session_secret: SecretStr | None = Field(None, alias="SESSION_SECRET")
    # Listener tuning: how many attempts before a message is parked; flow control.
    max_delivery_attempts: int = Field(5, alias="MAX_DELIVERY_ATTEMPTS", ge=1, le=100)
    listener_max_messages: int = Field(50, alias="LISTENER_MAX_MESSAGES", ge=1, le=10_000)
    # A listener worker still on one message after this long is logged once, with its stack
    # (`listener.message_stuck`, docs/operations.md).
    listener_stuck_seconds: float = Field(120.0, alias="LISTENER_STUCK_SECONDS", ge=1, le=86400)
    # A notification stored this long ago and still not settled (received or retrying) is
    # processed again from the inbox: Pub/Sub has stopped delivering it (docs/operations.md).
    inbox_resume_after_seconds: int = Field(
        900, alias="INBOX_RESUME_AFTER_SECONDS", ge=10, le=7 * 86400
    )
    sync_interval_seconds: int = Field(3600, alias="SYNC_INTERVAL_SECONDS", ge=0)
    # The mass-deletion guard (docs/operations.md): a sync that would delete more than this share
    # of the live accounts or entitlements AND more than this many stops for an operator.
    sync_max_delete_share: float = Field(0.10, alias="SYNC_MAX_DELETE_SHARE", ge=0, le=1)
    sync_max_delete_count: int = Field(3, alias="SYNC_MAX_DELETE_COUNT", ge=0)
    # Provisioning hooks (docs/hooks.md): receivers, webhook secret, retries, approval policy.
    hook_receivers: str = Field("", alias="HOOK_RECEIVERS")
    hook_webhook_secret: SecretStr | None = Field(None, alias="HOOK_WEBHOOK_SECRET")
    hook_max_attempts: int = Field(10, alias="HOOK_MAX_ATTEMPTS", ge=1, le=100)
    hook_timeout_seconds: float = Field(10.0, alias="HOOK_TIMEOUT_SECONDS", gt=0, le=300)
    provision_before_approve: bool = Field(False, alias="PROVISION_BEFORE_APPROVE")
    # Push endpoint: with PUSH_AUDIENCE set, `POST /pubsub/push` requires Pub/Sub's OIDC token
    # for that audience (and, with PUSH_SERVICE_ACCOUNT, issued to that service account).
    push_audience: str | None = Field(None, alias="PUSH_AUDIENCE")
    push_service_account: str | None = Field(None, alias="PUSH_SERVICE_ACCOUNT")
    # Where the OIDC token's signing certificates are (Google's; the emulator's in a rehearsal).
    push_certs_url: str = Field(GOOGLE_OIDC_CERTS_URL, alias="PUSH_CERTS_URL")
    # Operator console (docs/admin.md): `name:role:hash,...` (role viewer|operator; the hash from
    # `marketplace-saas admin hash-password`). Empty in the sandbox: a default `admin` operator.
    admin_operators: SecretStr = Field(SecretStr(""), alias="ADMIN_OPERATORS")
    # Strict-Transport-Security on every answer outside the sandbox (docs/security.md); 0 turns
    # it off, for a proxy in front that adds its own.
    hsts_max_age: int = Field(31_536_000, alias="HSTS_MAX_AGE", ge=0, le=63_072_000)

    @field_validator("usage_api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        return _csv(value)

    @field_validator("signup_fields", mode="before")
    @classmethod
    def _parse_signup_fields(cls, value: object) -> object:
        try:
            if isinstance(value, str):
                return load_fields(value)
            return value if isinstance(value, tuple) else parse_fields(value)
        except InvalidFieldConfig as exc:
            raise ConfigurationError(f"SIGNUP_FIELDS: {exc}") from None

    @model_validator(mode="after")
    def _read_signup_fields_file(self) -> Settings:
        path = self.signup_fields_file
        if path is None:
            return self
        if "signup_fields" in self.model_fields_set:
            raise ConfigurationError("set SIGNUP_FIELDS or SIGNUP_FIELDS_FILE, not both")
        try:
            text = path.read_text(encoding="utf-8")
            self.signup_fields = load_fields(text, toml=path.suffix.lower() == ".toml")
        except (OSError, UnicodeDecodeError, InvalidFieldConfig) as exc:
            raise ConfigurationError(f"SIGNUP_FIELDS_FILE {path}: {exc}") from None
        return self

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> Settings:
        if self.marketplace_sandbox is None:
            self.marketplace_sandbox = (
                self.google_cloud_project is None and self.procurement_api_endpoint is None
            )
        if self.marketplace_provider_id is None:
            project = self.google_cloud_project or SANDBOX_PROJECT
            self.marketplace_provider_id = f"DEMO-{project}"
        if not self.sandbox:
            self._refuse_unsafe_defaults()
        return self

    def _refuse_unsafe_defaults(self) -> None:
        problems = []
        if self.session_secret is not None and len(self.session_secret.get_secret_value()) < 32:
            problems.append(SESSION_SECRET_RULE)
        if self.google_cloud_project is None:
            problems.append("GOOGLE_CLOUD_PROJECT must be set outside the sandbox")
        if problems:
            raise ConfigurationError("unsafe configuration: " + "; ".join(problems))

    @property
    def sandbox(self) -> bool:
        return bool(self.marketplace_sandbox)

    @property
    def provider_id(self) -> str:
        assert self.marketplace_provider_id is not None  # set by the validator
        return self.marketplace_provider_id

    @property
    def project(self) -> str:
        return self.google_cloud_project or SANDBOX_PROJECT

    @property
    def topic_path(self) -> str:
        """Google's topic for this provider (reference section 2.1)."""
        return f"projects/cloudcommerceproc-prod/topics/{self.provider_id}"

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.marketplace_subscription}"

    @property
    def session_secret_value(self) -> str:
        """SESSION_SECRET; in the sandbox without one, a random secret for this process (`serve`
        sets the sandbox's own, kept across restarts: entrypoints/sandbox.py)."""
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        if not self.sandbox:
            raise ConfigurationError(f"unsafe configuration: {SESSION_SECRET_RULE}")
        return _process_secret()

    def require_session_secret(self) -> None:
        """The web app signs sessions: outside the sandbox it needs SESSION_SECRET (the commands
        that only read or decide do not)."""
        self.session_secret_value  # noqa: B018 - raises ConfigurationError when unusable

    def usage_tokens(self) -> set[str]:
        return {token.get_secret_value() for token in self.usage_api_tokens}


def describe_invalid(error: ValidationError) -> str:
    """One line per problem, in the project's words: our own ConfigurationError's message, or
    `VARIABLE: what pydantic found wrong` (without its input dump and link)."""
    lines = []
    for problem in error.errors():
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigurationError):
            lines.append(str(cause))
            continue
        where = ".".join(str(part) for part in problem["loc"])
        lines.append(f"{where}: {problem['msg']}" if where else str(problem["msg"]))
    return "; ".join(lines)
