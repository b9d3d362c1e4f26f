"""The sign-up form's rules, the signed session and the CSRF comparison (pure, no I/O)."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from marketplace_saas.domain.signup import DEFAULT_FIELDS, Visitor, validate
from marketplace_saas.entrypoints.web.security import SessionCodec, csrf_matches, new_csrf_token

GOOD = {"name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines"}


def test_good_answers_are_accepted_trimmed_and_whitespace_collapsed() -> None:
    result = validate(DEFAULT_FIELDS, {**GOOD, "name": "  Ada   Lovelace \n"})
    assert result.ok
    assert result.values["name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Please enter your name."),
        ("name", "   ", "Please enter your name."),
        ("email", "ada", "Please enter an email address like name@company.com."),
        ("email", "ada@example", "Please enter an email address like name@company.com."),
        ("email", "a da@example.com", "Please enter an email address like name@company.com."),
        ("email", "ada@@example.com", "Please enter an email address like name@company.com."),
        ("email", "x" * 250 + "@example.com", "Please keep your work email under 254 characters."),
        ("company", "c" * 201, "Please keep your company under 200 characters."),
        ("company", "Evil\u202eCorp", "Please remove the special characters from your company."),
        ("name", "Ada\x00", "Please remove the special characters from your name."),
    ],
)
def test_each_bad_answer_gets_a_message_for_its_own_field(
    field: str, value: str, message: str
) -> None:
    result = validate(DEFAULT_FIELDS, {**GOOD, field: value})
    assert result.errors == {field: message}


def test_a_missing_field_is_required() -> None:
    assert set(validate(DEFAULT_FIELDS, {}).errors) == {"name", "email", "company"}


def test_a_visitor_round_trips_through_the_session_and_junk_is_refused() -> None:
    visitor = Visitor("acct-1", "u-1", ("admin",), ("o-1",))
    assert Visitor.from_session(visitor.to_session()) == visitor
    assert Visitor.from_session({}) is None
    assert Visitor.from_session({"account_id": ""}) is None
    assert Visitor.from_session({"account_id": 5}) is None


def test_a_session_reads_back_only_when_signed_by_us_for_this_purpose() -> None:
    codec = SessionCodec("s" * 32, salt="signup", max_age=60)
    cookie = codec.dumps({"account_id": "acct-1"})
    assert codec.loads(cookie) == {"account_id": "acct-1"}
    assert codec.loads(cookie[:-2] + "xx") is None, "a tampered cookie is refused"
    assert SessionCodec("t" * 32, "signup", 60).loads(cookie) is None, "another secret"
    assert SessionCodec("s" * 32, "admin", 60).loads(cookie) is None, "another purpose"
    assert codec.loads(None) is None
    assert codec.loads("") is None


def test_an_old_session_is_expired() -> None:
    codec = SessionCodec("s" * 32, salt="signup", max_age=60)

    class TwoMinutesAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 120

    old = URLSafeTimedSerializer("s" * 32, salt="signup", signer=TwoMinutesAgo)
    assert codec.loads(str(old.dumps({"account_id": "acct-1"}))) is None
    assert SessionCodec("s" * 32, "signup", 600).loads(str(old.dumps({"a": 1}))) == {"a": 1}


def test_csrf_tokens_are_random_and_compared_exactly() -> None:
    token = new_csrf_token()
    assert len(token) >= 40
    assert token != new_csrf_token()
    assert csrf_matches(token, token)
    assert not csrf_matches(token, token[:-1])
    assert not csrf_matches(token, None)
    assert not csrf_matches("", "")
    assert not csrf_matches(None, None)
