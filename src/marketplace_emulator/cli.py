"""`marketplace-emulator`: serve the emulator, or act as a customer against a running one.

    marketplace-emulator serve [--port 8780] [--provider DEMO-sandbox ...]
    marketplace-emulator purchase --product example-product --plan basic
    marketplace-emulator change-plan ENTITLEMENT --plan pro
    marketplace-emulator advance-clock 2592000
    marketplace-emulator service-account-key > key.json   # for `serve --require-auth`

Customer commands call the control API of the emulator at `--url` (default
`$MARKETPLACE_EMULATOR_URL` or http://127.0.0.1:8780) for `--provider` (default
`$MARKETPLACE_PROVIDER_ID` or DEMO-sandbox), print the answer (JSON; `signup-token` prints the
bare token, and its JSON with `--json`, which every command takes), and exit non-zero with one
line `error: ...` on stderr when the emulator is unreachable (2) or answers an error (1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from marketplace_emulator.control_client import (
    DEFAULT_PROVIDER,
    DEFAULT_URL,
    CliError,
    ControlClient,
    segment,
)


def _json_argument(text: str) -> Any:
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"not a JSON object or a readable JSON file: {exc}") from None


def _run_client(args: argparse.Namespace, client: ControlClient) -> Any:
    cmd = args.command
    if cmd == "purchase":
        body: dict[str, Any] = {"product": args.product}
        optional = {
            "plan": args.plan,
            "account": args.account,
            "usageReportingId": args.usage_reporting_id,
            "offerId": args.offer,
            "resellerParentBillingAccount": args.reseller_parent_billing_account,
        }
        body.update({k: v for k, v in optional.items() if v})
        if args.input_properties:
            body["inputProperties"] = _json_argument(args.input_properties)
        return client.call("POST", client.provider_path("purchases"), body)
    if cmd == "change-plan":
        change = {k: v for k, v in {"plan": args.plan, "offerId": args.offer}.items() if v}
        return client.entitlement(args.entitlement, "changePlan", change)
    if cmd == "migrate":
        move = {"product": args.product, "plan": args.plan, "offerId": args.offer}
        return client.entitlement(args.entitlement, "migrate", {k: v for k, v in move.items() if v})
    if cmd == "disable-billing":
        path = client.provider_path(f"accounts/{segment(args.account)}:disableBilling")
        return client.call("POST", path, {})
    if cmd == "cancel":
        return client.entitlement(args.entitlement, "cancel", {"atTermEnd": args.at_term_end})
    if cmd == "end-offer":
        return client.entitlement(args.entitlement, "endOffer", {"cancel": args.cancel})
    verbs = {
        "revert-cancellation": "revertCancellation",
        "cancel-plan-change": "cancelPlanChange",
        "renew": "renew",
        "delete-entitlement": "delete",
    }
    if cmd in verbs:
        return client.entitlement(args.entitlement, verbs[cmd])
    if cmd == "delete-account":
        path = client.provider_path(f"accounts/{segment(args.account)}:delete")
        return client.call("POST", path, {})
    if cmd == "signup-token":
        body = {"account": args.account, "audience": args.audience}
        if args.ttl is not None:
            body["ttlSeconds"] = args.ttl
        return client.call("POST", "/emulator/v1/signupTokens", body)
    if cmd == "reports":
        if args.service:
            return client.call("GET", f"/emulator/v1/services/{quote(args.service)}/reports")
        return client.call("GET", "/emulator/v1/reports")
    if cmd == "faults":
        if args.action == "set":
            if args.settings is None:
                raise CliError("faults set needs a JSON object or a file holding one")
            return client.call("PUT", "/emulator/v1/faults", _json_argument(args.settings))
        if args.action == "clear":
            return client.call("PUT", "/emulator/v1/faults", {})
        return client.call("GET", "/emulator/v1/faults")
    if cmd == "reset":
        return client.call("POST", "/emulator/v1/reset", {})
    if cmd == "advance-clock":
        return client.call("POST", "/emulator/v1/clock:advance", {"seconds": args.seconds})
    if cmd == "notifications":
        return client.call("GET", f"/emulator/v1/notifications?provider={quote(client.provider)}")
    if cmd == "products":
        return client.call("GET", client.provider_path("products"))
    if cmd == "service-account-key":
        key: dict[str, Any] = {
            "name": args.name,
            "project": args.project,
            "providers": [args.provider_id],  # linked to this provider only, as in production
        }
        if args.scope:
            key["scopes"] = args.scope
        return client.call("POST", "/emulator/v1/serviceAccountKeys", key)
    if cmd == "status":
        return client.call("GET", "/emulator/v1/status")
    raise CliError(f"unknown command {cmd!r}")


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from marketplace_emulator.server import Emulator, create_app

    providers = args.provider or [args.provider_id]
    emulator = Emulator(
        pubsub_project=args.pubsub_project,
        push_endpoint=args.push_endpoint,
        providers=providers,
        activation_delay_seconds=args.activation_delay,
        state=args.state,
        require_auth=args.require_auth,
        push_auth=_push_auth(args),
    )
    url = f"http://{args.host}:{args.port}"
    print(banner(url, providers[0], emulator.notifier.modes, args.pubsub_project), flush=True)
    if args.require_auth:
        print(
            "\nAPI calls need OAuth tokens (--require-auth): make a key with\n"
            f"  marketplace-emulator --url {url} service-account-key > key.json\n"
            "and use it as GOOGLE_APPLICATION_CREDENTIALS (its token_uri is this emulator).",
            flush=True,
        )
    try:
        uvicorn.run(create_app(emulator), host=args.host, port=args.port, log_level="warning")
    finally:
        emulator.close()
    return 0


def _push_auth(args: argparse.Namespace) -> tuple[str, str] | None:
    if not args.push_service_account:
        return None
    return args.push_service_account, args.push_audience or args.push_endpoint or ""


def banner(url: str, provider: str, modes: Sequence[str], pubsub_project: str) -> str:
    delivery = ", ".join(modes) or "recorded only (set PUBSUB_EMULATOR_HOST or --push-endpoint)"
    return f"""Google Cloud Marketplace emulator on {url}
  Procurement API:  {url}/v1/providers/{provider}/entitlements
  Service Control:  {url}/v1/services/{{service}}:report
  Sign-up certs:    {url}/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com
  Control API:      {url}/emulator/v1/ (docs at {url}/emulator/docs)
  Notifications:    projects/{pubsub_project}/topics/{provider} -> {delivery}

Try:
  export MARKETPLACE_EMULATOR_URL={url} MARKETPLACE_PROVIDER_ID={provider}
  marketplace-emulator purchase --product example-product --plan basic
  marketplace-emulator notifications
  marketplace-emulator advance-clock 2592000
Point the official client at it:
  build("cloudcommerceprocurement", "v1", static_discovery=True,
        credentials=AnonymousCredentials(), client_options={{"api_endpoint": "{url}"}})"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketplace-emulator",
        description="A local emulator of Google Cloud Marketplace (Procurement, Service Control, "
        "sign-up JWT, Pub/Sub notifications), and the customer's side of it.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("MARKETPLACE_EMULATOR_URL", DEFAULT_URL),
        help="the running emulator (env MARKETPLACE_EMULATOR_URL)",
    )
    parser.add_argument(
        "--provider",
        dest="provider_id",
        default=os.environ.get("MARKETPLACE_PROVIDER_ID", DEFAULT_PROVIDER),
        help="provider id (env MARKETPLACE_PROVIDER_ID, default DEMO-sandbox)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the emulator")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8780, help="port to listen on (default 8780)")
    p.add_argument(
        "--pubsub-project",
        default="cloudcommerceproc-prod",
        help="the project of the notification topics (default cloudcommerceproc-prod)",
    )
    p.add_argument(
        "--push-endpoint",
        default=None,
        metavar="URL",
        help="push notifications to this URL as Pub/Sub push envelopes",
    )
    p.add_argument(
        "--provider",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="providers to create topics for at start (default: the global --provider)",
    )
    p.add_argument(
        "--activation-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="an approved entitlement turns active after this delay (default 0)",
    )
    p.add_argument(
        "--state",
        default=None,
        metavar="PATH",
        help="keep the whole state in this file across restarts (created if missing)",
    )
    p.add_argument(
        "--require-auth",
        action="store_true",
        help="API calls need an OAuth token (from /token) carrying the method's scope",
    )
    p.add_argument(
        "--push-service-account",
        metavar="EMAIL",
        help="sign each push request with an OIDC token for this service account",
    )
    p.add_argument(
        "--push-audience", metavar="AUDIENCE", help="the OIDC token's audience (default: the URL)"
    )

    p = sub.add_parser("purchase", help="a customer buys a plan (or an offer of the catalog)")
    p.add_argument("--product", required=True, help="the product (see `products`)")
    p.add_argument("--plan", help="the plan bought; required unless --offer names one")
    p.add_argument("--offer", help="an offer id of the product's catalog")
    p.add_argument("--account", help="an existing (or new) account id")
    p.add_argument("--usage-reporting-id", help="the entitlement's usage reporting id")
    p.add_argument("--input-properties", metavar="JSON", help="the entitlement's inputProperties")
    p.add_argument(
        "--reseller-parent-billing-account",
        metavar="billingAccounts/ID",
        help="buy through a reseller: the parent billing account",
    )
    p = sub.add_parser("change-plan", help="the customer asks for another plan or offer")
    p.add_argument("entitlement", help="the entitlement id or name")
    p.add_argument("--plan", help="the plan asked for")
    p.add_argument("--offer", help="an offer id of the product's catalog")
    p = sub.add_parser("migrate", help="the customer moves an entitlement to another product")
    p.add_argument("entitlement", help="the entitlement id or name")
    p.add_argument("--product", required=True, help="the product moved to")
    p.add_argument("--plan", help="the plan on the new product")
    p.add_argument("--offer", help="an offer id of the new product's catalog")
    sub.add_parser(
        "disable-billing", help="the customer disables billing: the account's orders end"
    ).add_argument("account", help="the account id or name")
    p = sub.add_parser("cancel", help="the customer cancels")
    p.add_argument("entitlement", help="the entitlement id or name")
    p.add_argument(
        "--at-term-end",
        action="store_true",
        default=None,
        help="cancel when the term ends (pending cancellation) instead of now",
    )
    p = sub.add_parser("end-offer", help="the current offer ends")
    p.add_argument("entitlement", help="the entitlement id or name")
    p.add_argument("--cancel", action="store_true", help="cancel instead of carrying on")
    for name, text in [
        ("revert-cancellation", "the customer takes back a pending cancellation"),
        ("cancel-plan-change", "the customer withdraws a pending plan change"),
        ("renew", "the term renews now"),
        ("delete-entitlement", "Google deletes a cancelled entitlement"),
    ]:
        sub.add_parser(name, help=text).add_argument(
            "entitlement", help="the entitlement id or name"
        )
    sub.add_parser("delete-account", help="the customer's account is deleted").add_argument(
        "account", help="the account id or name"
    )
    p = sub.add_parser("signup-token", help="mint the sign-up JWT for an account (prints it bare)")
    p.add_argument("account", help="the account id")
    p.add_argument("--audience", required=True, help="the JWT's aud: your product's domain")
    p.add_argument(
        "--ttl", type=int, default=None, metavar="SECONDS", help="validity (default 5 minutes)"
    )
    p = sub.add_parser("reports", help="usage reports Service Control accepted")
    p.add_argument("--service", help="only this service's reports")
    p = sub.add_parser("faults", help="fault injection: set FILE|JSON, clear, show")
    p.add_argument("action", choices=["set", "clear", "show"], help="set, clear or show")
    p.add_argument("settings", nargs="?", help="set: a JSON object, or a file holding one")
    sub.add_parser("reset", help="forget all state")
    sub.add_parser("advance-clock", help="move the clock forward").add_argument(
        "seconds", type=float, help="how far, in seconds"
    )
    sub.add_parser("notifications", help="notifications published for the provider")
    sub.add_parser("products", help="the provider's product catalog")
    sub.add_parser("status", help="the emulator's version, delivery and clock")
    p = sub.add_parser(
        "service-account-key",
        help="a key file for the emulator's token endpoint, linked to --provider",
    )
    p.add_argument("--name", default="marketplace-backend", help="the account id (before @)")
    p.add_argument(
        "--project", default="emulator-project", help="the project in the account's email"
    )
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="URL",
        help="only these scopes may be granted to the key (repeat; default: any)",
    )
    for name, command in sub.choices.items():  # as in marketplace-saas, every answer takes --json
        if name != "serve":
            command.add_argument(
                "--json",
                action="store_true",
                help="print the answer as JSON (the default, but for signup-token's bare token)",
            )
    return parser


def main(argv: Sequence[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    client = ControlClient(args.url, args.provider_id, transport=transport)
    try:
        result = _run_client(args, client)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    finally:
        client.close()
    try:
        if args.command == "signup-token" and not args.json:
            print(result["token"])
        else:
            print(json.dumps(result, indent=2, sort_keys=True))
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
