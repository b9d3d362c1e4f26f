"""The one composition root: settings, database, Google gateways and the clock, wired once.

    container = bootstrap()                      # production and the sandbox: from the environment
    container = bootstrap(settings, procurement=fake, clock=lambda: FIXED)   # tests swap adapters

Gateways are built on first use, so commands that never call Google (`db upgrade`, `events list`)
need no credentials. The Google credentials (`adapters.credentials`) are made here, once, and
loaded on first use; each gateway the container builds signs with its API's scoped copy.
`close()` releases what the container created (not what it was given).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.adapters.credentials import (
    PROCUREMENT_SCOPES,
    SERVICECONTROL_SCOPES,
    GoogleCredentials,
)
from marketplace_saas.adapters.db.engine import create_engine, session_factory
from marketplace_saas.adapters.db.group_commit import GroupCommit
from marketplace_saas.adapters.procurement import ProcurementApi, ProcurementGateway
from marketplace_saas.config import Settings

Clock = Callable[[], datetime]

# At most this many notifications' writes share one SQLite transaction (`GroupCommit`).
SQLITE_GROUP_COMMIT = 32

# Where the metering engineer's Service Control gateway lives; built lazily if importable.
SERVICECONTROL_MODULE = "marketplace_saas.adapters.servicecontrol"


def system_clock() -> datetime:
    return datetime.now(UTC)


class Container:
    """Everything a service function needs; one per process (or per test)."""

    def __init__(
        self,
        settings: Settings,
        engine: sa.Engine,
        *,
        procurement: ProcurementApi | None = None,
        servicecontrol: Any | None = None,
        clock: Clock | None = None,
        owns_engine: bool = False,
        credentials: GoogleCredentials | None = None,
    ) -> None:
        self.settings = settings
        # Google credentials, loaded once on first use and scoped per API by the gateways.
        self.credentials = credentials or GoogleCredentials(settings)
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        # The listener's write transactions, grouped on SQLite (one writer at a time there).
        self.writes: GroupCommit[Session] = GroupCommit(
            self.sessions.begin,
            max_batch=SQLITE_GROUP_COMMIT if engine.dialect.name == "sqlite" else 1,
        )
        self._procurement = procurement
        self._owned_gateways: list[Any] = []
        self._servicecontrol = servicecontrol
        self._clock: Clock = clock or system_clock
        self._owns_engine = owns_engine

    def now(self) -> datetime:
        """The current time, aware UTC (a fixed or stepping clock in tests)."""
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the container's clock returned a naive datetime")
        return value.astimezone(UTC)

    @property
    def procurement(self) -> ProcurementApi:
        if self._procurement is None:
            gateway = ProcurementGateway(
                self.settings, credentials=self.credentials.scoped(PROCUREMENT_SCOPES)
            )
            self._owned_gateways.append(gateway)
            self._procurement = gateway
        return self._procurement

    @procurement.setter
    def procurement(self, gateway: ProcurementApi) -> None:
        self._procurement = gateway

    @property
    def servicecontrol(self) -> Any:
        """The Service Control gateway (metering); None until that adapter exists."""
        if self._servicecontrol is None:
            self._servicecontrol = _default_servicecontrol(self.settings, self.credentials)
            if self._servicecontrol is not None:
                self._owned_gateways.append(self._servicecontrol)
        return self._servicecontrol

    @servicecontrol.setter
    def servicecontrol(self, gateway: Any) -> None:
        self._servicecontrol = gateway

    def close(self) -> None:
        """Close the gateways and the engine this container made (not those it was given)."""
        for gateway in self._owned_gateways:
            close = getattr(gateway, "close", None)
            if callable(close):
                close()
        self._owned_gateways.clear()
        if self._owns_engine:
            self.engine.dispose()


def _default_servicecontrol(settings: Settings, credentials: GoogleCredentials) -> Any:
    try:
        module = importlib.import_module(SERVICECONTROL_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SERVICECONTROL_MODULE:
            raise
        return None
    factory = getattr(module, "ServiceControlGateway", None)
    if factory is None:
        return None
    return factory(settings, credentials=credentials.scoped(SERVICECONTROL_SCOPES))


def bootstrap(
    settings: Settings | None = None,
    *,
    procurement: ProcurementApi | None = None,
    servicecontrol: Any | None = None,
    engine: sa.Engine | None = None,
    clock: Clock | None = None,
    credentials: GoogleCredentials | None = None,
) -> Container:
    """Wire the backend. Anything passed in is used as given (and not closed by `close()`)."""
    settings = settings if settings is not None else Settings()
    owns_engine = engine is None
    if engine is None:
        engine = create_engine(settings.database_url)
    return Container(
        settings,
        engine,
        procurement=procurement,
        servicecontrol=servicecontrol,
        clock=clock,
        owns_engine=owns_engine,
        credentials=credentials,
    )
