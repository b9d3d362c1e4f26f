"""The one place that classifies Service Control's answers: check errors and report errors."""

from __future__ import annotations

import pytest

from marketplace_saas.adapters.servicecontrol import (
    report_error_is_transient,
)
from marketplace_saas.domain.suspension import Verdict, check_verdict


@pytest.mark.parametrize("code", ["SERVICE_NOT_ACTIVATED", "BILLING_DISABLED", "PROJECT_DELETED"])
def test_the_three_stop_service_codes_suspend(code: str) -> None:
    verdict = check_verdict([{"code": code, "detail": "why"}])
    assert (verdict.verdict, verdict.code, verdict.detail) == (Verdict.SUSPEND, code, "why")


@pytest.mark.parametrize(
    "code",
    [
        "NAMESPACE_LOOKUP_UNAVAILABLE",
        "SERVICE_STATUS_UNAVAILABLE",
        "BILLING_STATUS_UNAVAILABLE",
        "QUOTA_CHECK_UNAVAILABLE",
        "LOAD_SHEDDING",
        "INJECTED_ERROR",
    ],
)
def test_outages_are_retried_and_never_suspend(code: str) -> None:
    assert check_verdict([{"code": code}]).verdict is Verdict.RETRY


def test_other_codes_are_refusals_and_the_ignored_code_passes() -> None:
    assert check_verdict([{"code": "PERMISSION_DENIED"}]).verdict is Verdict.REFUSED
    assert check_verdict([{"code": "SECURITY_POLICY_BACKEND_UNAVAILABLE"}]).verdict is Verdict.OK
    assert check_verdict([]).verdict is Verdict.OK


def test_the_most_serious_error_wins() -> None:
    errors = [{"code": "QUOTA_CHECK_UNAVAILABLE"}, {"code": "BILLING_DISABLED"}]
    assert check_verdict(errors).verdict is Verdict.SUSPEND


@pytest.mark.parametrize(
    ("code", "transient"), [(14, True), (13, True), (4, True), (3, False), (7, False), (6, False)]
)
def test_report_errors_are_resent_only_for_transient_statuses(code: int, transient: bool) -> None:
    assert report_error_is_transient({"code": code, "message": "x"}) is transient
