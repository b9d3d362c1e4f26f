"""What a new user saw in a browser in the first hour, over the whole stack, in Chromium: the usage
chart of a window that does not start on the hour, the timeline as changes and durations, the
footer in line with the page, the start page and `/login` for a person, and the sandbox's sign-up
page saying what was wrong with a pasted token. Screenshots go to `test-output/first-hour/`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from marketplace_saas.adapters.db.models import AuditLog, UsageRecord, UsageReport
from tests.e2e.stack import PASSWORD, Stack, operator_stack
from tests.support.metering import SeededEntitlement, seed_entitlements

pytestmark = pytest.mark.e2e

PROVIDER = "DEMO-sandbox"


@pytest.fixture
def stack(migrated_database_url: str) -> Iterator[Stack]:
    with operator_stack(migrated_database_url, PROVIDER) as running:
        yield running


@pytest.fixture
def shot(page: Any, test_output_dir: Path, request: pytest.FixtureRequest) -> Callable[[str], None]:
    folder = test_output_dir / "first-hour"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id

    def take(name: str) -> None:
        page.screenshot(path=str(folder / f"{name}-{suffix}.png"), full_page=True)

    return take


def sign_in(stack: Stack, page: Any) -> None:
    page.goto(stack.url + "/admin/login")
    page.get_by_label("Name").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stack.url + "/admin")


def test_the_usage_chart_draws_bars_for_windows_that_do_not_start_on_the_hour(
    stack: Stack, page: Any, shot: Callable[[str], None]
) -> None:
    """Activated at HH:23:49 with 120 requests ingested and reported: two bars in that hour; a
    plan change at HH:25 of the next hour splits it into two windows, drawn as one hour's bars."""
    hour = stack.container.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    activated = hour + timedelta(minutes=23, seconds=49)
    changed = hour + timedelta(hours=1, minutes=25)
    eid = "mid-hour"
    with stack.container.sessions.begin() as session:
        seed_entitlements(
            session,
            [
                SeededEntitlement(
                    eid, "basic", activated, "project_number:7", changes=[(changed, "pro")]
                )
            ],
        )
        windows = [  # (window start, value, plan)
            (activated, Decimal(120), "basic"),
            (hour + timedelta(hours=1), Decimal(30), "basic"),
            (changed, Decimal(50), "pro"),
        ]
        for i, (start, value, plan) in enumerate(windows):
            session.add(
                UsageRecord(
                    record_id=f"mid-{i}",
                    entitlement_id=eid,
                    metric="requests",
                    value=value,
                    time=start,
                    window_start=start,
                )
            )
            session.add(
                UsageReport(
                    operation_id=f"op-mid-{i}",
                    entitlement_id=eid,
                    consumer_id="project_number:7",
                    plan=plan,
                    window_start=start,
                    window_end=start + timedelta(minutes=30),
                    metric_values={
                        "m": {"type": "int64", "metric": "requests", "value": str(value)}
                    },
                    status="accepted",
                )
            )
    sign_in(stack, page)
    page.goto(f"{stack.url}/admin/entitlements/{eid}")
    chart = page.locator('figure.chart[data-metric="requests"]')
    chart.scroll_into_view_if_needed()
    assert "ingested 200" in chart.inner_text()
    assert chart.locator("rect.bar--ingested").count() == 2
    assert chart.locator("rect.bar--reported").count() == 2
    titles = chart.locator("rect.bar--ingested title").all_text_contents()
    assert f"{activated:%Y-%m-%d %H}:00 UTC: ingested 120" in titles
    assert f"{changed:%Y-%m-%d %H}:00 UTC: ingested 80" in titles  # 30 basic + 50 pro
    shot("01-usage-chart-mid-hour")


def test_the_timeline_shows_changes_and_durations_and_the_footer_lines_up(
    stack: Stack, page: Any, shot: Callable[[str], None]
) -> None:
    """`state: ACTIVATION_REQUESTED → ACTIVE`, a call's duration in its own column, the raw JSON
    behind a disclosure; the footer starts where the page's content starts."""
    eid = "timeline"
    now = stack.container.now()
    with stack.container.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement(eid, "basic", now, None)])
        for minutes, kind, action, details in [
            (3, "change", "entitlement.created", {"changes": {"state": "ACTIVATION_REQUESTED"}}),
            (2, "api_call", "approve_entitlement", {"seconds": 0.0123}),
            (
                1,
                "change",
                "entitlement.updated",
                {"changes": {"state": "ACTIVE", "service_enabled": True}, "hooks": ["active"]},
            ),
        ]:
            session.add(
                AuditLog(
                    at=now - timedelta(minutes=minutes),
                    kind=kind,
                    action=action,
                    actor="listener",
                    entitlement_id=eid,
                    outcome="ok",
                    details=details,
                )
            )
    sign_in(stack, page)
    page.goto(f"{stack.url}/admin/entitlements/{eid}")
    timeline = page.locator("section", has=page.get_by_role("heading", name="Timeline"))
    text = timeline.inner_text()
    assert "state: ACTIVATION_REQUESTED → ACTIVE" in text
    assert "service_enabled: yes" in text
    assert "12 ms" in timeline.locator("td[data-duration]").all_inner_texts()
    assert '"hooks"' not in text  # the raw JSON waits behind its disclosure
    raw = timeline.locator("details.raw").first
    raw.locator("summary").click()
    assert '"hooks"' in raw.inner_text()
    footer = page.locator("footer.site-footer .container").bounding_box()
    main = page.locator("main").bounding_box()
    assert abs(footer["x"] - main["x"]) < 1
    assert abs(footer["width"] - main["width"]) < 1
    shot("02-timeline")


def test_the_start_page_and_login_speak_to_a_person(
    stack: Stack, page: Any, shot: Callable[[str], None]
) -> None:
    """`/` is a page linking sign-up, the console and the docs; `GET /login` explains itself;
    an unknown address is a page; the JSON surfaces stay JSON."""
    page.goto(stack.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "marketplace-saas"
    for name, href in [
        ("Sign-up", "/signup"),
        ("Operator console", "/admin"),
        ("API documentation", "/admin/api"),
    ]:
        assert page.get_by_role("link", name=name, exact=True).get_attribute("href") == href
    shot("03-start-page")
    page.goto(stack.url + "/login")
    assert "Google Cloud Marketplace" in page.get_by_role("heading", level=1).inner_text()
    assert page.get_by_text("Manage on provider").first.is_visible()
    shot("04-login-explained")
    answer = page.goto(stack.url + "/no-such-page")
    assert answer.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Page not found"
    shot("05-not-found")
    api = page.request.get(stack.url + "/api/v1/no-such-thing")
    assert api.status == 404
    assert api.json() == {"detail": "Not Found"}


def test_a_bad_pasted_token_keeps_the_paste_box_and_says_what_was_wrong(
    stack: Stack, page: Any, shot: Callable[[str], None]
) -> None:
    """In the sandbox, a pasted JSON blob (what signup-token used to print) is refused with the
    reason and the advice, and the paste box is still there to try again."""
    page.goto(stack.url + "/signup")
    page.get_by_label("Sign-up token").fill('{"token": "abc.def.ghi"}')
    page.get_by_role("button", name="Continue to sign-up").click()
    page.wait_for_load_state()
    problem = page.locator(".pasted-problem")
    assert "refused (malformed)" in problem.inner_text()
    assert "marketplace-emulator signup-token" in problem.inner_text()
    assert page.get_by_label("Sign-up token").is_visible()
    shot("06-signup-pasted-token-refused")
