"""`marketplace-emulator` customer commands against a running emulator, and their failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketplace_emulator import cli
from marketplace_emulator.catalog import OfferSpec, PlanSpec, Product
from marketplace_emulator.server import Emulator, RunningEmulator, free_port
from tests.integration.emulator.conftest import PROVIDER

pytestmark = pytest.mark.integration


class Cli:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, Any, str]:
        code = cli.main(["--url", self.url, "--provider", PROVIDER, *argv])
        out, err = self.capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err

    def ok(self, *argv: str) -> Any:
        code, out, err = self.run(*argv)
        assert code == 0, err
        return out


@pytest.fixture
def run(live_emulator: RunningEmulator, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(live_emulator.url, capsys)


def test_customer_commands_drive_the_lifecycle(run: Cli, emu: Emulator) -> None:
    bought = run.ok(
        "purchase", "--product", "example-product", "--plan", "basic", "--account", "a1"
    )
    eid = bought["entitlement"]["name"]  # a full resource name is accepted too
    emu.procurement.approve_account(PROVIDER, "a1")
    emu.procurement.approve_entitlement(PROVIDER, eid.rsplit("/", 1)[1])
    assert run.ok("change-plan", eid, "--plan", "pro")["newPendingPlan"] == "pro"
    assert run.ok("cancel-plan-change", eid)["state"] == "ENTITLEMENT_ACTIVE"
    assert run.ok("cancel", eid, "--at-term-end")["state"] == "ENTITLEMENT_PENDING_CANCELLATION"
    assert run.ok("revert-cancellation", eid)["state"] == "ENTITLEMENT_ACTIVE"
    assert run.ok("renew", eid)["state"] == "ENTITLEMENT_ACTIVE"
    assert run.ok("end-offer", eid, "--cancel")["state"] == "ENTITLEMENT_CANCELLED"
    assert run.ok("delete-entitlement", eid) == {}
    assert run.ok("delete-account", "a1") == {}
    types = [n["eventType"] for n in run.ok("notifications")["notifications"]]
    assert types[-3:] == ["ENTITLEMENT_CANCELLED", "ENTITLEMENT_DELETED", "ACCOUNT_DELETED"]


def test_clock_products_status_and_reset_commands(run: Cli) -> None:
    run.ok("purchase", "--product", "example-product", "--plan", "pro")
    assert "now" in run.ok("advance-clock", "3600")
    assert "example-product" in run.ok("products")["products"]
    assert run.ok("status")["pubsubProject"] == "cloudcommerceproc-prod"
    assert run.ok("reset") == {}
    assert run.ok("notifications") == {"notifications": []}


def test_faults_set_from_json_or_a_file_show_and_clear(run: Cli, tmp_path: Path) -> None:
    shown = run.ok("faults", "set", '{"seed": 7, "procurement": {"errorRate": 0.5}}')
    assert shown["procurement"]["errorRate"] == 0.5
    settings = tmp_path / "faults.json"
    settings.write_text('{"seed": 9}', encoding="utf-8")
    assert run.ok("faults", "set", str(settings))["seed"] == 9
    assert run.ok("faults", "show")["seed"] == 9
    assert run.ok("faults", "clear")["seed"] == 0


def test_signup_token_and_reports_reach_their_endpoints(run: Cli) -> None:
    run.ok("purchase", "--product", "example-product", "--plan", "basic", "--account", "a2")
    token = run.ok("signup-token", "a2", "--audience", "isv.example.com", "--json")["token"]
    assert token.count(".") == 2
    assert isinstance(run.ok("reports"), dict)
    assert isinstance(run.ok("reports", "--service", "example-product"), dict)


def test_an_error_answer_exits_1_with_googles_message_on_stderr(run: Cli) -> None:
    code, out, err = run.run("renew", "no-such-entitlement")
    assert (code, out) == (1, None)
    assert "404 NOT_FOUND" in err
    assert "no-such-entitlement" in err
    code, _, err = run.run("faults", "set", "{not json")
    assert code == 1
    assert "not a JSON object" in err


def test_an_unreachable_emulator_exits_2_and_says_how_to_start_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["--url", f"http://127.0.0.1:{free_port()}", "status"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "cannot reach the emulator" in err
    assert "marketplace-emulator serve" in err


def test_serve_accepts_several_providers_and_prints_how_to_drive_it() -> None:
    args = cli.build_parser().parse_args(["serve", "--port", "9999", "--provider", "A", "B"])
    assert (args.port, args.provider) == (9999, ["A", "B"])
    text = cli.banner("http://127.0.0.1:9999", "A", [], "cloudcommerceproc-prod")
    assert "projects/cloudcommerceproc-prod/topics/A" in text
    assert "marketplace-emulator purchase --product example-product --plan basic" in text
    assert '"api_endpoint": "http://127.0.0.1:9999"' in text


def test_offer_migration_and_billing_commands(run: Cli, emu: Emulator) -> None:
    """purchase --offer, change-plan --offer, migrate and disable-billing reach the control API."""
    emu.catalog.put(
        PROVIDER,
        "other",
        Product(
            service_name="other.endpoints.test.cloud.goog",
            plans={"basic": PlanSpec(), "pro": PlanSpec()},
            offers={"pro-1y": OfferSpec(plan="pro", duration="P1Y")},
        ),
    )
    props = '{"seats": 3}'
    bought = run.ok(
        "purchase", "--product", "other", "--offer", "pro-1y", "--account", "a2",
        "--input-properties", props,
    )  # fmt: skip
    assert (bought["entitlement"]["plan"], bought["entitlement"]["offerDuration"]) == ("pro", "P1Y")
    assert bought["entitlement"]["inputProperties"] == {"seats": 3}
    emu.procurement.approve_account(PROVIDER, "a2")
    first = bought["entitlement"]["orderId"]
    emu.procurement.approve_entitlement(PROVIDER, first)
    assert run.ok("change-plan", first, "--plan", "basic")["newPendingPlan"] == "basic"
    run.ok("cancel-plan-change", first)
    assert (
        "/privateOffers/pro-1y"
        in run.ok("change-plan", first, "--offer", "pro-1y")["newPendingOffer"]
    )
    run.ok("cancel-plan-change", first)
    moved = run.ok("migrate", first, "--product", "example-product", "--plan", "basic")
    assert moved["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
    ended = run.ok("disable-billing", "a2")["entitlements"]
    assert {e["cancellationReason"] for e in ended} == {"billing-disabled"}
    assert len(ended) == 2
