"""`python -m tests.support.stalling_reporter ARGS...`: the CLI, stalled after its first report.

Runs `marketplace_saas.entrypoints.cli.main(ARGS)` with one change: the Service Control gateway
the container builds stops right after its first `services.report` request has been answered by
Service Control, before the reporter can record the outcome in its ledger. It first writes the
operationIds of that request that Service Control recorded, as a JSON list, to the file named by
`STALL_AFTER_REPORT_FILE` (written whole, then renamed into place), then sleeps until it is
killed. A test waits for the file and sends SIGKILL: the process dies at a known point, between
sending a report and recording its outcome.

Test support only: production code knows nothing of this module or its environment variable.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import marketplace_saas.adapters.servicecontrol as servicecontrol
from marketplace_saas.entrypoints.cli import main

SIGNAL_FILE = "STALL_AFTER_REPORT_FILE"
STALL_SECONDS = 300.0  # far longer than any test waits; the test kills the process first


class StallAfterReport(servicecontrol.ServiceControlGateway):
    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        answer = super().report(service_name, operations)
        target = Path(os.environ[SIGNAL_FILE])
        partial = target.with_name(target.name + ".partial")
        refused = {error.get("operationId") for error in answer.get("reportErrors") or []}
        recorded = [op["operationId"] for op in operations if op["operationId"] not in refused]
        partial.write_text(json.dumps(recorded))
        partial.replace(target)
        time.sleep(STALL_SECONDS)
        os._exit(3)  # never reached in a passing test; a stray process must not go on reporting


def run(argv: list[str]) -> int:
    if SIGNAL_FILE not in os.environ:
        raise SystemExit(f"{SIGNAL_FILE} is not set")
    # The container builds `SERVICECONTROL_MODULE.ServiceControlGateway(settings, credentials=)`
    # when first used.
    servicecontrol.ServiceControlGateway = StallAfterReport  # type: ignore[misc]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
