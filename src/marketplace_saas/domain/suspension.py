"""When Service Control's check means the customer's service must stop (reference 4.4).

    check_verdict(checkErrors) -> OK | SUSPEND (stop serving the customer) | RETRY | REFUSED

SERVICE_NOT_ACTIVATED, BILLING_DISABLED and PROJECT_DELETED suspend; outages (`*_UNAVAILABLE`,
load shedding) are retried and never turn a service off; anything else is refused (visible, and
retried on the next run). Applied by `service/metering/suspension.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

# CheckError codes after which Google recommends to stop serving the customer (reference 4.4).
SUSPEND_CODES = frozenset({"SERVICE_NOT_ACTIVATED", "BILLING_DISABLED", "PROJECT_DELETED"})
# Backend outages and artificial faults: retry, never a reason to cut service off.
RETRY_CODES = frozenset({"LOAD_SHEDDING", "INJECTED_ERROR", "ERROR_CODE_UNSPECIFIED"})
# "should be ignored" (the discovery document).
IGNORED_CODES = frozenset({"SECURITY_POLICY_BACKEND_UNAVAILABLE"})


class Verdict(Enum):
    OK = "ok"
    SUSPEND = "suspend"  # stop serving the customer until a later check passes
    RETRY = "retry"  # an outage on Google's side: try again later, change nothing
    REFUSED = "refused"  # any other error: try again later, and make it visible


@dataclass(frozen=True)
class CheckVerdict:
    verdict: Verdict
    code: str | None = None
    detail: str | None = None


def check_verdict(check_errors: Sequence[dict[str, Any]]) -> CheckVerdict:
    """What a check's `checkErrors` mean for us; the most serious error wins."""
    found: list[CheckVerdict] = []
    for error in check_errors:
        code = str(error.get("code", "ERROR_CODE_UNSPECIFIED"))
        detail = str(error.get("detail") or error.get("status", {}).get("message") or code)
        if code in IGNORED_CODES:
            continue
        if code in SUSPEND_CODES:
            found.append(CheckVerdict(Verdict.SUSPEND, code, detail))
        elif code.endswith("_UNAVAILABLE") or code in RETRY_CODES:
            found.append(CheckVerdict(Verdict.RETRY, code, detail))
        else:
            found.append(CheckVerdict(Verdict.REFUSED, code, detail))
    for verdict in (Verdict.SUSPEND, Verdict.REFUSED, Verdict.RETRY):
        for item in found:
            if item.verdict is verdict:
                return item
    return CheckVerdict(Verdict.OK)
