"""Metering: usage records in, hourly usage reports out to Service Control, counted once.

    ingest.py      record_usage(): validate and store a batch (`POST /v1/usage`)
    placement.py   which window a record joins (its own, or the first open one when late)
    closing.py     close due windows into the report ledger (operationId, sums, carried fractions)
    report.py      report_usage(): close, then check and report every unfinished window in order
    suspension.py  the customer's service turned off and on by Service Control's check
    history.py     what was ingested and reported (`usage show`, `usage pending`)
    ports.py       the usage store's protocol (SQL: adapters/db/usage_ledger.py, usage_store.py)

Where a window starts and ends, and its operationId: `domain.usage` (`Timeline`, `operation_id`).
"""

from marketplace_saas.service.metering.history import pending_usage, usage_history
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.metering.report import report_usage

__all__ = ["pending_usage", "record_usage", "report_usage", "usage_history"]
