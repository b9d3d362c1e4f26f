"""An example SaaS provider app: workspaces turned on, changed and off by marketplace hooks.

    python examples/provider_app/app.py --port 8790 --data ./provider-data \
        --backend http://127.0.0.1:8080 --usage-token TOKEN

Point the backend at it with `HOOK_RECEIVERS=http://127.0.0.1:8790/hooks` and the same
`HOOK_WEBHOOK_SECRET` (the sandbox does both). It:

- verifies every webhook with `marketplace_saas.webhooks.verify` (400 on a bad signature);
- keeps workspaces in one JSON file, written atomically (temporary file, fsync, rename), and
  remembers the idempotency keys it has applied, so a repeated delivery changes nothing;
- shows the workspaces at `/` and as JSON at `/api/workspaces`;
- sends usage for a workspace to the backend's `POST /v1/usage` ("Send usage" on the page).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from marketplace_saas import webhooks

SANDBOX_SECRET = "sandbox-only-webhook-secret-not-for-production"  # noqa: S105 - sandbox default
KEEP_KEYS = 10_000  # idempotency keys remembered


class Store:
    """Workspaces by entitlement id, in one JSON file replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        data.setdefault("workspaces", {})
        data.setdefault("customers", {})
        data.setdefault("applied", [])
        return data

    def write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".workspaces-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def apply(data: dict[str, Any], hook: str, event: dict[str, Any]) -> str:
    """Change the workspaces as `hook` says; returns what was done (for the log and the reply)."""
    body = event.get("data") or {}
    entitlement = body.get("entitlement") or {}
    account = body.get("account") or {}
    customer = body.get("customer") or {}
    workspaces: dict[str, Any] = data["workspaces"]
    key = entitlement.get("id")
    if hook == "customer.signed_up" and customer.get("id"):
        data["customers"][customer["id"]] = {**customer, "account": account.get("id")}
        return "customer recorded"
    if hook == "account.deleted":
        gone = [k for k, w in workspaces.items() if w.get("account") == account.get("id")]
        for k in gone:
            del workspaces[k]
        data["customers"] = {
            k: c for k, c in data["customers"].items() if c.get("account") != account.get("id")
        }
        return f"erased account {account.get('id')} ({len(gone)} workspace(s))"
    if not key:
        return "ignored: no entitlement"
    if hook == "entitlement.cancelled":
        return "workspace deleted" if workspaces.pop(key, None) else "already deleted"
    workspace = workspaces.get(key)
    if hook == "entitlement.active" and workspace is None:
        workspaces[key] = {
            "id": key,
            "account": entitlement.get("account_id") or account.get("id"),
            "customer": customer.get("email") or customer.get("name"),
            "product": entitlement.get("product"),
            "plan": body.get("plan"),
            "usage_reporting_id": entitlement.get("usage_reporting_id"),
            "status": "active",
            "created_at": _now(),
            "updated_at": _now(),
        }
        return "workspace created"
    if workspace is None:
        return f"ignored: no workspace for {key}"
    status = {
        "entitlement.pending_cancellation": "cancelling",
        "entitlement.cancellation_reverted": "active",
        "entitlement.suspended": "suspended",
        "entitlement.restored": "active",
    }.get(hook)
    if status:
        workspace["status"] = status
    if body.get("plan"):
        workspace["plan"] = body["plan"]
    if entitlement.get("usage_reporting_id"):
        workspace["usage_reporting_id"] = entitlement["usage_reporting_id"]
    workspace["updated_at"] = _now()
    return f"workspace updated ({hook})"


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Example SaaS workspaces</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}}
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.4rem .6rem;
border-bottom:1px solid #ddd}}th{{background:#f5f5f7}}.s-active{{color:#0a7d32}}
.s-cancelling,.s-suspended{{color:#b35c00}}button{{padding:.2rem .7rem}}
.note{{color:#666}}</style><meta http-equiv="refresh" content="5"></head><body>
<h1>Example SaaS: workspaces</h1>
<p class="note">Created, changed and removed by Google Cloud Marketplace hooks. {count}</p>
<table><tr><th>Entitlement</th><th>Account</th><th>Customer</th><th>Plan</th><th>Status</th>
<th>Updated</th><th>Usage</th></tr>{rows}</table></body></html>"""

ROW = """<tr><td>{id}</td><td>{account}</td><td>{customer}</td><td>{plan}</td>
<td class="s-{status}">{status}</td><td>{updated_at}</td><td><form method="post"
action="/workspaces/{id}/usage"><button>Send 100 requests</button></form></td></tr>"""


def create_app(
    store: Store, *, secret: str, backend_url: str, usage_token: str | None, metric: str
) -> FastAPI:
    app = FastAPI(title="Example SaaS provider")

    @app.post("/hooks")
    async def hooks(request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            event = webhooks.verify(body, request.headers.get(webhooks.SIGNATURE_HEADER), secret)
        except webhooks.SignatureError as exc:
            raise HTTPException(400, f"rejected: {exc}") from exc
        key = request.headers.get(webhooks.IDEMPOTENCY_HEADER) or event.get("id")
        hook = str(event.get("hook"))
        with store.lock:
            data = store.read()
            if key in data["applied"]:
                return {"ok": True, "duplicate": True}
            done = apply(data, hook, event)
            data["applied"] = [*data["applied"], key][-KEEP_KEYS:]
            store.write(data)
        print(f"hook {hook} {key}: {done}", flush=True)
        return {"ok": True, "done": done}

    @app.get("/api/workspaces")
    def list_workspaces() -> dict[str, Any]:
        data = store.read()
        return {"workspaces": data["workspaces"], "customers": data["customers"]}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        workspaces = store.read()["workspaces"].values()
        rows = "".join(
            ROW.format(**{k: html.escape(str(w.get(k) or "-")) for k in ROW_FIELDS})
            for w in workspaces
        )
        empty = '<tr><td colspan="7" class="note">No workspaces yet: buy a plan.</td></tr>'
        return PAGE.format(rows=rows or empty, count=f"{len(workspaces)} workspace(s).")

    @app.post("/workspaces/{entitlement_id}/usage")
    def send_usage(entitlement_id: str) -> RedirectResponse:
        if entitlement_id not in store.read()["workspaces"]:
            raise HTTPException(404, "no such workspace")
        record = {
            "id": str(uuid.uuid4()),
            "entitlement": entitlement_id,
            "metric": metric,
            "value": 100,
            "time": datetime.now(UTC).isoformat(),
            "labels": {"source": "example-provider"},
        }
        headers = {"Authorization": f"Bearer {usage_token}"} if usage_token else {}
        try:
            response = httpx.post(
                f"{backend_url.rstrip('/')}/v1/usage",
                json={"records": [record]},
                headers=headers,
                timeout=10,
            )
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"the backend is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise HTTPException(502, f"the backend said {response.status_code}: {response.text}")
        return RedirectResponse("/", status_code=303)

    return app


ROW_FIELDS = ("id", "account", "customer", "plan", "status", "updated_at")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--data", default="provider-data", help="folder of workspaces.json")
    parser.add_argument("--backend", default=os.environ.get("BACKEND_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--usage-token", default=os.environ.get("USAGE_API_TOKEN"))
    parser.add_argument("--metric", default="requests", help="the usage metric the button sends")
    args = parser.parse_args(argv)
    secret = os.environ.get("HOOK_WEBHOOK_SECRET") or SANDBOX_SECRET
    store = Store(Path(args.data) / "workspaces.json")
    app = create_app(
        store,
        secret=secret,
        backend_url=args.backend,
        usage_token=args.usage_token,
        metric=args.metric,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
