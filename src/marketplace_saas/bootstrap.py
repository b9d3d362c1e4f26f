"""The one composition root: settings, database, Google gateways and the clock, wired once.

    container = bootstrap()                      # production and the sandbox: from the environment
    container = bootstrap(settings, instrument=True)   # the commands: Google calls measured
    container = bootstrap(settings, procurement=fake, clock=lambda: FIXED)   # tests swap adapters

This is the only place that builds and instruments adapters. Gateways are built on first use, so
commands that never call Google (`db upgrade`, `events list`) need no credentials. `close()`
first runs what was registered with `before_close()` (work still using the container, such as
the admin overview's health checks, finishes), then releases what the container created (not
what it was given). The container is the use cases' `service.unit_of_work.App`:
`unit_of_work()`, `reading()` and `writes` hand out `adapters.db.unit_of_work.SqlUnitOfWork`s.
The Google credentials (`adapters.credentials`) are made here, once, and loaded on first use;
each gateway the container builds signs with its API's scoped copy.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.adapters import metrics
from marketplace_saas.adapters.credentials import (
    PROCUREMENT_SCOPES,
    SERVICECONTROL_SCOPES,
    GoogleCredentials,
)
from marketplace_saas.adapters.db import unit_of_work as sql_uow
from marketplace_saas.adapters.db.console import SqlConsole
from marketplace_saas.adapters.db.engine import create_engine, session_factory
from marketplace_saas.adapters.db.group_commit import GroupCommit
from marketplace_saas.adapters.db.replica_locks import ShardClaims, held_lock, report_claims
from marketplace_saas.adapters.procurement import ProcurementApi, ProcurementGateway
from marketplace_saas.adapters.servicecontrol import ServiceControlApi, ServiceControlGateway
from marketplace_saas.config import Settings
from marketplace_saas.service.console.reads import ConsoleViews

Clock = Callable[[], datetime]

# At most this many notifications' writes share one transaction (`GroupCommit`).
GROUP_COMMIT = 32


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
        servicecontrol: ServiceControlApi | None = None,
        clock: Clock | None = None,
        owns_engine: bool = False,
        instrument: bool = False,
        credentials: GoogleCredentials | None = None,
    ) -> None:
        self.settings = settings
        # Google credentials, loaded once on first use and scoped per API by the gateways.
        self.credentials = credentials or GoogleCredentials(settings)
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        # The listener's write transactions, grouped: SQLite has one writer at a time, and on
        # PostgreSQL a shared transaction saves each its own connection checkout, BEGIN and
        # COMMIT; its locks do not wait there (`GroupCommit`, `transaction(wait_for_locks=)`).
        self.writes: GroupCommit[sql_uow.SqlUnitOfWork] = GroupCommit(
            self._write_unit_of_work,
            max_batch=GROUP_COMMIT,
            begin_shared=self._shared_unit_of_work,
        )
        # The console's read models, one short session per `with container.console() as reads`.
        self.console: ConsoleViews = SqlConsole(self.sessions)
        self._procurement = procurement
        self._owned_gateways: list[Any] = []
        self._servicecontrol = servicecontrol
        self._clock: Clock = clock or system_clock
        self._owns_engine = owns_engine
        self._instrument = instrument
        self._before_close: list[Callable[[], None]] = []

    def unit_of_work(self) -> AbstractContextManager[sql_uow.SqlUnitOfWork]:
        """A write transaction: committed when the block ends, rolled back on an error."""
        return sql_uow.transaction(self.sessions)

    def _write_unit_of_work(self) -> AbstractContextManager[sql_uow.SqlUnitOfWork]:
        """A group commit's transaction of one work: audit, outbox and settlements sent last."""
        return sql_uow.transaction(self.sessions, defer_writes=True)

    def _shared_unit_of_work(self) -> AbstractContextManager[sql_uow.SqlUnitOfWork]:
        """A group commit's transaction of several works: a busy lock fails it at once."""
        return sql_uow.transaction(self.sessions, wait_for_locks=False, defer_writes=True)

    def reading(self) -> AbstractContextManager[sql_uow.SqlUnitOfWork]:
        """A read-only transaction: nothing is committed."""
        return sql_uow.reading(self.sessions)

    def report_claims(self) -> AbstractContextManager[ShardClaims]:
        """The usage reporter's claims on its shards, released when the run ends."""
        return report_claims(self.engine)

    def held_lock(self, name: str) -> AbstractContextManager[bool]:
        """A named lock across replicas for the block (False: another replica holds it)."""
        return held_lock(self.engine, name)

    def _own(self, gateway: Any, api: str) -> Any:
        """A gateway this container built: closed by `close()`, measured if asked."""
        self._owned_gateways.append(gateway)
        return metrics.instrumented(gateway, api=api) if self._instrument else gateway

    def now(self) -> datetime:
        """The current time, aware UTC (a fixed or stepping clock in tests)."""
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the container's clock returned a naive datetime")
        return value.astimezone(UTC)

    @property
    def procurement(self) -> ProcurementApi:
        if self._procurement is None:
            self._procurement = self._own(
                ProcurementGateway(
                    self.settings, credentials=self.credentials.scoped(PROCUREMENT_SCOPES)
                ),
                "procurement",
            )
        return self._procurement

    @procurement.setter
    def procurement(self, gateway: ProcurementApi) -> None:
        self._procurement = gateway

    @property
    def servicecontrol(self) -> ServiceControlApi:
        """The Service Control gateway (metering)."""
        if self._servicecontrol is None:
            self._servicecontrol = self._own(
                ServiceControlGateway(
                    self.settings, credentials=self.credentials.scoped(SERVICECONTROL_SCOPES)
                ),
                "servicecontrol",
            )
        return self._servicecontrol

    @servicecontrol.setter
    def servicecontrol(self, gateway: ServiceControlApi) -> None:
        self._servicecontrol = gateway

    def before_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` when `close()` starts, before anything is closed: e.g. to wait for
        background work that still uses the engine or a gateway."""
        self._before_close.append(callback)

    def close(self) -> None:
        """Close the gateways and the engine this container made (not those it was given),
        once the `before_close` callbacks have run."""
        callbacks, self._before_close = self._before_close, []
        for callback in callbacks:
            callback()
        for gateway in self._owned_gateways:
            close = getattr(gateway, "close", None)
            if callable(close):
                close()
        self._owned_gateways.clear()
        if self._owns_engine:
            self.engine.dispose()


def bootstrap(
    settings: Settings | None = None,
    *,
    procurement: ProcurementApi | None = None,
    servicecontrol: ServiceControlApi | None = None,
    engine: sa.Engine | None = None,
    clock: Clock | None = None,
    instrument: bool = False,
    credentials: GoogleCredentials | None = None,
) -> Container:
    """Wire the backend. Anything passed in is used as given (and not closed by `close()`);
    with `instrument`, the gateways built here count and time their calls (`adapters.metrics`)."""
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
        instrument=instrument,
        credentials=credentials,
    )
