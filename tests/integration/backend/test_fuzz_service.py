"""Fuzzing below HTTP (hypothesis; issue 13, item 5): what `test_fuzz_http.py` cannot reach.

- Notification payloads (the JSON inside a Pub/Sub message) through `inbox.handle_message`, as
  the listener and the push endpoint call it: no exception; an invalid payload is stored as one
  `invalid` inbox row with its reason and nothing else is written.
- Usage batches through `record_usage`, the service the API and the CLI share: no exception,
  only the accepted records stored, every refusal with a reason.
- Sign-up tokens shaped as JWTs (wrong algorithms, forged signatures, tampered and missing
  claims, junk claim types) posted to `/signup`: refused with a reason, nothing written.

Bounded (`max_examples`, no deadline); each runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace_emulator.identity.models import encode_rs256
from marketplace_emulator.identity.models import signing_key as emulator_key
from marketplace_saas.bootstrap import Container
from marketplace_saas.domain.notifications import (
    InvalidNotification,
    digest_event_id,
    parse_notification,
)
from marketplace_saas.entrypoints.web.app import create_app
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.signup_support import AUDIENCE, row_counts, signup_container
from tests.support import signup_tokens

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates and NUL included
junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(),
        st.text(ANY_CHAR, max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture
def container(make_container: ContainerFactory, emulator_url: str) -> Container:
    return signup_container(make_container, emulator_url, usage_api_tokens="fuzz-token")


def _without(counts: dict[str, int], table: str) -> dict[str, int]:
    return {name: n for name, n in counts.items() if name != table}


# -- notification payloads ------------------------------------------------------------------------

EVENT_TYPES = [
    "ENTITLEMENT_CREATION_REQUESTED",
    "ENTITLEMENT_ACTIVE",
    "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
    "ENTITLEMENT_CANCELLED",
    "ENTITLEMENT_DELETED",
    "ACCOUNT_ACTIVE",
    "ACCOUNT_DELETED",
    "NOT_AN_EVENT",
]
update_time = st.one_of(
    st.just("2026-01-01T00:00:00.123Z"),
    st.just("0000-00-00T00:00:00Z"),
    st.just("2026-13-01T00:00:00Z"),
    st.just("9999-12-31T23:59:59.999999999Z"),
    st.text(ANY_CHAR, max_size=25),
    junk,
)
subject = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(ANY_CHAR, max_size=20), junk),
        "updateTime": update_time,
        "newPlan": st.one_of(st.sampled_from(["basic", "pro"]), junk),
        "newOffer": junk,
    },
)
payload = st.fixed_dictionaries(
    {},
    optional={
        "eventId": st.one_of(st.text(ANY_CHAR, min_size=1, max_size=30), junk),
        "providerId": st.one_of(st.just(PROVIDER), junk),
        "eventType": st.one_of(st.sampled_from(EVENT_TYPES), junk),
        "entitlement": st.one_of(subject, junk),
        "account": st.one_of(subject, junk),
    },
)
message = st.one_of(
    payload.map(lambda p: json.dumps(p).encode("utf-8", "surrogatepass")),
    junk.map(lambda j: json.dumps(j).encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),
)


def _invalid_row(container: Container, data: bytes) -> dict[str, Any] | None:
    with container.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, last_error FROM inbox WHERE event_id = :key AND status = 'invalid'"
            ),
            {"key": digest_event_id(data)},
        ).first()
    return None if row is None else dict(row._mapping)


@FUZZ
@given(data=message)
def test_fuzzed_notification_payloads_never_crash_and_invalid_ones_are_kept_with_a_reason(
    container: Container, data: bytes
) -> None:
    before = row_counts(container)
    try:
        parse_notification(data, provider_id=PROVIDER)
        valid = True
    except InvalidNotification:
        valid = False
    outcome = handle_message(container, data, message_id="fuzz", source="pull")
    assert outcome in (Disposition.ACK, Disposition.NACK)
    after = row_counts(container)
    if not valid:
        assert outcome is Disposition.ACK
        assert _without(after, "inbox") == _without(before, "inbox"), "an invalid one wrote"
        assert after["inbox"] - before["inbox"] in (0, 1)  # a repeat counts one more delivery
        row = _invalid_row(container, data)
        assert row is not None, "an invalid payload was not kept"
        assert row["last_error"], "an invalid payload was kept without its reason"


# -- usage batches at the service level -----------------------------------------------------------

record = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.text(ANY_CHAR, min_size=1, max_size=8), junk),
            "entitlement": st.one_of(st.just("no-such-entitlement"), junk),
            "metric": st.one_of(st.sampled_from(["requests", "storage_gb"]), junk),
            "value": st.one_of(
                st.integers(-(10**20), 10**20),
                st.floats(),
                st.decimals(allow_nan=True),
                st.just(Decimal("1e999")),
                junk,
            ),
            "time": st.one_of(update_time, st.just(time.strftime("%Y-%m-%dT%H:%M:%SZ"))),
            "labels": st.one_of(st.dictionaries(st.text(ANY_CHAR, max_size=5), junk), junk),
        },
    ),
)


@FUZZ
@given(records=st.lists(record, max_size=6))
def test_fuzzed_usage_batches_through_the_service_store_exactly_what_they_accept(
    container: Container, records: list[Any]
) -> None:
    before = row_counts(container)
    result = record_usage(container, records)
    after = row_counts(container)
    assert after["usage_records"] - before["usage_records"] == result.accepted
    assert all(rejection.reason for rejection in result.rejected)
    assert result.accepted + result.duplicates + len(result.rejected) == len(records)


# -- sign-up tokens shaped as JWTs ----------------------------------------------------------------


def _claims(now: int) -> dict[str, Any]:
    return {
        "iss": "https://www.googleapis.com/robot/v1/metadata/x509/"
        "cloud-commerce-partner@system.gserviceaccount.com",
        "aud": AUDIENCE,
        "sub": "no-such-account",
        "iat": now,
        "exp": now + 300,
        "google": {"user_identity": "user-1", "roles": ["account_admin"]},
    }


def _segment(value: Any) -> str:
    raw = json.dumps(value).encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


claim_changes = st.dictionaries(
    st.sampled_from(["iss", "aud", "sub", "iat", "exp", "nbf", "google"]),
    st.one_of(junk, st.integers(0, 2**40), st.just(None)),
    max_size=3,
)
signer = st.sampled_from(["emulator", "forger", "none", "junk-signature", "hs256"])


@FUZZ
@given(
    changes=claim_changes,
    drop=st.lists(st.sampled_from(["iss", "aud", "sub", "exp"])),
    how=signer,
    header_junk=st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), junk),
)
def test_fuzzed_and_forged_signup_jwts_are_refused_with_a_reason_and_write_nothing(
    http: TestClient,
    container: Container,
    changes: dict[str, Any],
    drop: list[str],
    how: str,
    header_junk: dict[str, Any],
) -> None:
    claims = {**_claims(int(time.time())), **changes}
    for name in drop:
        claims.pop(name, None)
    if how == "emulator":
        token = encode_rs256(emulator_key(), claims)
    elif how == "forger":
        forger = signup_tokens.signing_key("fuzz-forger")
        token = signup_tokens.mint(forger, claims, header={"alg": "RS256", **header_junk})
    elif how == "none":
        token = f"{_segment({'alg': 'none', **header_junk})}.{_segment(claims)}."
    elif how == "hs256":
        token = signup_tokens.mint_hs256_with_public_cert(signup_tokens.signing_key("fuzz"), claims)
    else:
        token = f"{_segment({'alg': 'RS256', **header_junk})}.{_segment(claims)}.AAAA"
    before = row_counts(container)
    answer = http.post("/signup", data={"x-gcp-marketplace-token": token})
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert answer.text.strip(), "a refusal without a reason"
    assert row_counts(container) == before


@pytest.fixture
def http(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), follow_redirects=False) as client:
        yield client
