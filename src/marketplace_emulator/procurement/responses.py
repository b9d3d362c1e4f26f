"""Parsing requests and shaping responses for the Procurement API: no rules live here.

Bodies and query strings are checked the way Google's JSON front end checks them: malformed JSON,
a non-object body, an unknown field, a field of the wrong type or an unknown query parameter all
answer 400 INVALID_ARGUMENT. Field names are accepted in lowerCamelCase and in snake_case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.exceptions import InvalidArgument

# System parameters every Google API method accepts (discovery document "parameters").
STANDARD_PARAMS = frozenset(
    {
        "$.xgafv",
        "access_token",
        "alt",
        "callback",
        "fields",
        "key",
        "oauth_token",
        "prettyPrint",
        "quotaUser",
        "uploadType",
        "upload_protocol",
    }
)
MAX_BODY_BYTES = 1024 * 1024

# Request message fields: JSON name -> "string" or "map" (map<string, string>).
APPROVE_ACCOUNT = {"approvalName": "string", "reason": "string", "properties": "map"}
REJECT_ACCOUNT = {"approvalName": "string", "reason": "string"}
RESET_ACCOUNT: dict[str, str] = {}
APPROVE_ENTITLEMENT = {"properties": "map", "entitlementMigrated": "string"}
REJECT_ENTITLEMENT = {"reason": "string"}
APPROVE_PLAN_CHANGE = {"pendingPlanName": "string"}
REJECT_PLAN_CHANGE = {"pendingPlanName": "string", "reason": "string"}
SUSPEND_ENTITLEMENT = {"reason": "string"}
# Entitlement as a patch body: every field may be sent; only messageToUser is writable.
ENTITLEMENT_FIELDS = dict.fromkeys(
    (
        "account",
        "cancellationReason",
        "consumers",
        "createTime",
        "entitlementBenefitIds",
        "inputProperties",
        "name",
        "newOfferEndTime",
        "newOfferStartTime",
        "newPendingOffer",
        "newPendingOfferDuration",
        "newPendingPlan",
        "offer",
        "offerDuration",
        "offerEndTime",
        "orderId",
        "plan",
        "product",
        "productExternalName",
        "provider",
        "quoteExternalName",
        "state",
        "subscriptionEndTime",
        "updateTime",
        "usageReportingId",
    ),
    "any",
) | {"messageToUser": "string"}
PATCHABLE = frozenset({"messageToUser", "message_to_user"})
ACCOUNT_VIEWS = frozenset({"ACCOUNT_VIEW_UNSPECIFIED", "ACCOUNT_VIEW_BASIC", "ACCOUNT_VIEW_FULL"})


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def check_query(request: Request, *allowed: str) -> None:
    for name in request.query_params:
        if name not in STANDARD_PARAMS and name not in allowed:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{name}": '
                "Cannot bind query parameter. Field '"
                f"{name}' could not be found in request message."
            )
    alt = request.query_params.get("alt", "json")
    if alt != "json":
        raise InvalidArgument(f"Unsupported alt={alt!r}: the emulator answers JSON only.")


def query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(
            f"Invalid value at '{_snake(name)}' (TYPE_INT32), \"{raw}\""
        ) from None
    if not -(2**31) <= value < 2**31:
        raise InvalidArgument(f"Invalid value at '{_snake(name)}' (TYPE_INT32), \"{raw}\"")
    return value


async def json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}`."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgument("Request payload is too large.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument(
            f"Invalid JSON payload received. Expected a JSON object, got {type(body).__name__}."
        )
    return body


def parse_message(body: Mapping[str, Any], schema: Mapping[str, str]) -> dict[str, Any]:
    """Check `body` against a request message; returns it keyed by the camelCase names."""
    names = {name: name for name in schema} | {_snake(name): name for name in schema}
    out: dict[str, Any] = {}
    for key, value in body.items():
        field = names.get(key)
        if field is None:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
        kind = schema[field]
        if value is None:
            continue
        if kind == "string" and not isinstance(value, str):
            raise InvalidArgument(
                f"Invalid value at '{field}' (TYPE_STRING), {json.dumps(value)[:100]}"
            )
        if kind == "map" and not (
            isinstance(value, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise InvalidArgument(f"Invalid value at '{field}': expected a map of strings.")
        out[field] = value
    return out


def update_mask(request: Request) -> None:
    """`entitlements.patch` requires `updateMask`, and only `messageToUser` may be named."""
    raw = request.query_params.get("updateMask") or request.query_params.get("update_mask")
    if not raw:
        raise InvalidArgument("updateMask is required; the only updatable field is messageToUser.")
    paths = [p.strip() for p in raw.split(",")]
    bad = [p for p in paths if p not in PATCHABLE]
    if bad:
        raise InvalidArgument(
            f"updateMask names fields that cannot be updated: {', '.join(bad)}. "
            "Only messageToUser is updatable."
        )


def account_view(request: Request) -> str:
    """The `view` asked for (ACCOUNT_VIEW_UNSPECIFIED means BASIC)."""
    view = request.query_params.get("view")
    if view is not None and view not in ACCOUNT_VIEWS:
        raise InvalidArgument(f"Invalid value at 'view' (type.googleapis.com/AccountView), {view}")
    return view or "ACCOUNT_VIEW_UNSPECIFIED"


def list_accounts(accounts: list[r.Account], token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if accounts:
        out["accounts"] = [a.to_json() for a in accounts]
    if token:
        out["nextPageToken"] = token
    return out


def list_entitlements(entitlements: list[r.Entitlement], token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entitlements:
        out["entitlements"] = [e.to_json() for e in entitlements]
    if token:
        out["nextPageToken"] = token
    return out


def split_action(segment: str, kind: str) -> tuple[str, str]:
    """`{id}:{verb}` -> (id, verb); the id must be non-empty."""
    resource_id, sep, verb = segment.rpartition(":")
    if not sep:
        resource_id, verb = segment, ""
    if not resource_id:
        raise InvalidArgument(f"Invalid resource name: empty {kind} id in {segment!r}.")
    return resource_id, verb
