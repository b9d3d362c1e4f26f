"""The simulated marketplace of the chaos run: customers' actions drawn from a seeded PRNG, the
sign-up flow through a random replica, and usage posted to every replica concurrently."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from marketplace_emulator.procurement.exceptions import NotFound
from tests.reliability.stack import AUDIENCE, PROVIDER, USAGE_TOKEN, Stack

PLANS = ("basic", "pro")
METRICS = ("requests", "storage_gb")


def control(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    """A customer's action through the emulator's control API (never faulted)."""
    return httpx.post(f"{stack.emulator.url}/emulator/v1/{path}", json=body, timeout=30)


def _id(resource: dict[str, Any]) -> str:
    return str(resource["name"]).rsplit("/", 1)[1]


@dataclass
class Marketplace:
    """What the customers did: every account and entitlement ever bought, counted by action."""

    stack: Stack
    rng: random.Random
    accounts: list[str] = field(default_factory=list)
    entitlements: list[str] = field(default_factory=list)
    stable: list[str] = field(default_factory=list)  # never touched: they receive usage
    stable_accounts: set[str] = field(default_factory=set)
    unsigned: list[str] = field(default_factory=list)  # accounts not signed up yet
    gone: list[str] = field(default_factory=list)  # accounts the customers deleted
    actions: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)  # time spent: sign-ups, the rest

    def buy(self, *, stable: bool = False) -> str:
        plan = self.rng.choice(PLANS)
        body: dict[str, Any] = {"product": "example-product", "plan": plan}
        others = [a for a in self.accounts if a not in self.stable_accounts]
        if others and not stable and self.rng.random() < 0.2:
            body["account"] = self.rng.choice(others)  # one more order of an account
        answer = control(self.stack, f"providers/{PROVIDER}/purchases", body)
        if answer.status_code >= 400:  # e.g. the account was deleted meanwhile
            return ""
        bought = answer.json()
        account, entitlement = _id(bought["account"]), _id(bought["entitlement"])
        if account not in self.accounts:
            self.accounts.append(account)
            self.unsigned.append(account)
        self.entitlements.append(entitlement)
        if stable:
            self.stable.append(entitlement)
            self.stable_accounts.add(account)
        self.actions["purchase"] += 1
        return account

    def state(self, entitlement: str) -> str | None:
        try:
            found = self.stack.emulator.emulator.procurement.get_entitlement(PROVIDER, entitlement)
        except NotFound:
            return None
        return str(found.to_json()["state"]).removeprefix("ENTITLEMENT_")

    def act(self, signups: bool) -> None:
        """One customer's action, chosen at random among those their orders allow."""
        started, signed = time.monotonic(), self.actions["signup"]
        self._act(signups)
        kind = "signups" if self.actions["signup"] > signed else "other actions"
        self.seconds[kind] = self.seconds.get(kind, 0.0) + time.monotonic() - started

    def _act(self, signups: bool) -> None:
        roll = self.rng.random()
        if roll < 0.3 or not self.entitlements:
            self.buy()
            return
        if signups and self.unsigned and roll < 0.45:
            self.sign_up(self.unsigned.pop(self.rng.randrange(len(self.unsigned))))
            return
        if roll < 0.55 and self._burst():
            return
        deletable = [a for a in self.accounts if a not in self.stable_accounts]
        if roll > 0.985 and deletable:
            account = self.rng.choice(deletable)
            if self._customer(f"accounts/{account}:delete", {}, "account_deleted"):
                self.accounts.remove(account)  # Google never reuses an account id
                self.gone.append(account)
                if account in self.unsigned:
                    self.unsigned.remove(account)
            return
        candidates = [e for e in self.entitlements if e not in self.stable]
        if not candidates:
            return
        entitlement = self.rng.choice(candidates)
        state = self.state(entitlement)
        path = f"entitlements/{entitlement}"
        if state == "ACTIVE":
            choice = self.rng.choice(["changePlan", "cancel", "cancelAtEnd", "endOffer", "renew"])
            if choice == "changePlan":
                plan = self.rng.choice(PLANS)
                self._customer(f"{path}:changePlan", {"plan": plan}, "plan_change")
            elif choice == "cancel":
                self._customer(f"{path}:cancel", {"atTermEnd": False}, "cancel")
            elif choice == "cancelAtEnd":
                self._customer(f"{path}:cancel", {"atTermEnd": True}, "cancel_at_term_end")
            elif choice == "endOffer":
                ending = {"cancel": self.rng.random() < 0.5}
                self._customer(f"{path}:endOffer", ending, "offer_end")
            else:
                self._customer(f"{path}:renew", {}, "renew")
        elif state == "PENDING_CANCELLATION":
            self._customer(f"{path}:revertCancellation", {}, "revert")
        elif state == "CANCELLED":
            self._customer(f"{path}:delete", {}, "entitlement_deleted")
        elif state == "PENDING_PLAN_CHANGE_APPROVAL":
            self._customer(f"{path}:cancelPlanChange", {}, "plan_change_cancelled")
        elif state == "ACTIVATION_REQUESTED" and self.rng.random() < 0.3:
            self._customer(f"{path}:cancel", {"atTermEnd": False}, "abort")

    def _burst(self) -> bool:
        """A customer who keeps changing their mind: 3 to 6 changes of one active entitlement
        within a second or so (cancel at term end, revert, change plan; half the time a
        cancellation to end it), so that the replicas handle its notifications at once while
        the API's state still moves, each reading a different one. False when no active
        entitlement was found."""
        candidates = [e for e in self.entitlements if e not in self.stable]
        picks = self.rng.sample(candidates, min(5, len(candidates)))
        entitlement = next((e for e in picks if self.state(e) == "ACTIVE"), None)
        if entitlement is None:
            return False
        path = f"entitlements/{entitlement}"
        steps = self.rng.randint(3, 6)
        for step in range(steps):
            time.sleep(self.rng.uniform(0.0, 0.3))  # the replicas read the API in between
            state = self.state(entitlement)
            if step == steps - 1 and state == "ACTIVE" and self.rng.random() < 0.5:
                self._customer(f"{path}:cancel", {"atTermEnd": False}, "burst: cancel")
            elif state == "ACTIVE" and self.rng.random() < 0.7:
                self._customer(f"{path}:cancel", {"atTermEnd": True}, "burst: cancel_at_term_end")
            elif state == "ACTIVE":
                plan = self.rng.choice(PLANS)
                self._customer(f"{path}:changePlan", {"plan": plan}, "burst: plan_change")
            elif state == "PENDING_CANCELLATION":
                self._customer(f"{path}:revertCancellation", {}, "burst: revert")
            else:  # a plan change waiting for the backend's approval: let it work
                time.sleep(0.05)
        self.actions["burst"] += 1
        return True

    def _customer(self, path: str, body: dict[str, Any], name: str) -> bool:
        answer = control(self.stack, f"providers/{PROVIDER}/{path}", body)
        # A state that moved on since it was read (the backend approved, a replica applied a
        # plan change) answers FAILED_PRECONDITION: the customer's click came too late.
        self.actions[name if answer.status_code < 400 else f"{name} (refused)"] += 1
        return answer.status_code < 400

    def sign_up(self, account: str) -> bool:
        """The customer's browser posts Google's token to a random live replica, then the form."""
        token = control(self.stack, "signupTokens", {"account": account, "audience": AUDIENCE})
        if token.status_code >= 400:  # deleted meanwhile
            return False
        for _ in range(20):
            replicas = self.stack.live() or self.stack.replicas
            base = self.rng.choice(replicas).url
            try:
                if _sign_up_at(base, token.json()["token"]):
                    self.actions["signup"] += 1
                    return True
            except httpx.HTTPError:
                continue  # that replica was killed: the customer reloads
        self.actions["signup (failed)"] += 1
        return False


def _sign_up_at(base: str, token: str) -> bool:
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as browser:
        form = browser.post("/signup", data={"x-gcp-marketplace-token": token})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if form.status_code != 200 or csrf is None or "set-cookie" not in form.headers:
            return False
        done = browser.post(
            "/signup/complete",
            data={
                "name": "Chaos Customer",
                "email": "customer@example.com",
                "company": "Chaos Ltd",
                "csrf_token": csrf.group(1),
            },
            headers={"cookie": form.headers["set-cookie"].split(";", 1)[0]},
        )
        return done.status_code == 303


@dataclass
class UsageFeed:
    """Usage posted to every replica at once (one thread per replica), each batch retried on
    another replica when its replica dies; `ingested` holds what the backend accepted."""

    stack: Stack
    entitlements: list[str]
    seed: int
    ingested: dict[str, tuple[str, str, int, datetime]] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(len(self.stack.replicas)):
            thread = threading.Thread(target=self._feed, args=(index,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _feed(self, index: int) -> None:
        rng = random.Random(self.seed * 31 + index)
        while not self.stop.wait(0.2):
            batch = [
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "entitlement": rng.choice(self.entitlements),
                    "metric": rng.choice(METRICS),
                    "value": rng.randint(1, 100),
                    "time": datetime.now(UTC).isoformat(),
                }
                for _ in range(rng.randint(1, 20))
            ]
            self._post(batch, index, rng)

    def _post(self, batch: list[dict[str, Any]], index: int, rng: random.Random) -> None:
        for attempt in range(200):
            replica = self.stack.replicas[(index + attempt) % len(self.stack.replicas)]
            try:
                answer = httpx.post(
                    f"{replica.url}/v1/usage",
                    json={"records": batch},
                    headers={"Authorization": f"Bearer {USAGE_TOKEN}"},
                    timeout=30,
                )
            except httpx.HTTPError:
                self.stop.wait(0.1 + rng.random() * 0.2)
                continue
            if answer.status_code >= 500:
                continue
            assert answer.status_code == 200, answer.text
            refused = {r["id"]: r for r in answer.json()["rejected"]}
            with self.lock:
                self.refused.extend(refused.values())
                for record in batch:
                    if record["id"] not in refused:
                        when = datetime.fromisoformat(record["time"])
                        key = (record["entitlement"], record["metric"], record["value"], when)
                        self.ingested[record["id"]] = key
            return
        raise AssertionError("no replica took a usage batch in 200 attempts")
