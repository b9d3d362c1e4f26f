"""Console operators from ADMIN_OPERATORS: salted scrypt hashes, roles, clear errors."""

from __future__ import annotations

import pytest

from marketplace_saas.adapters.operators import (
    OperatorConfigError,
    OperatorDirectory,
    hash_password,
    parse_operators,
    sandbox_password,
    verify_password,
)
from marketplace_saas.config import Settings

HASH = hash_password("s3cret-password")


def test_a_hash_verifies_its_password_only_and_is_salted() -> None:
    """Right password matches, a wrong one does not, and two hashes of one password differ."""
    assert verify_password("s3cret-password", HASH)
    assert not verify_password("s3cret-passwore", HASH)
    assert not verify_password("", HASH)
    assert hash_password("s3cret-password") != HASH
    assert ":" not in HASH
    assert "," not in HASH


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain-text",
        "scrypt.16384.8.1.c2FsdA",
        "scrypt.3.8.1.AAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB",
    ],
)
def test_a_malformed_hash_never_matches(bad: str) -> None:
    assert not verify_password("anything", bad)


def test_operators_parse_with_roles() -> None:
    entries = parse_operators(f" alice:operator:{HASH} , bob:viewer:{HASH},")
    directory = OperatorDirectory(entries)
    alice = directory.authenticate("alice", "s3cret-password")
    assert alice is not None
    assert (alice.role, alice.can_act, alice.actor) == ("operator", True, "operator:alice")
    bob = directory.authenticate("bob", "s3cret-password")
    assert bob is not None
    assert not bob.can_act
    assert directory.authenticate("carol", "s3cret-password") is None
    assert directory.authenticate("alice", "wrong") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice:operator", "expected name:role:hash"),
        (f"alice:admin:{HASH}", "role must be viewer or operator"),
        ("alice:operator:hunter2", "plain-text passwords are not accepted"),
        (f"bad name:operator:{HASH}", "bad operator name"),
        (f"alice:operator:{HASH},alice:viewer:{HASH}", "listed twice"),
    ],
)
def test_bad_configuration_names_the_entry_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(OperatorConfigError, match=message):
        parse_operators(text)


def test_the_sandbox_has_a_default_admin_and_production_has_nobody() -> None:
    """Empty ADMIN_OPERATORS: `admin` with the process's password in the sandbox, no one else."""
    sandbox = OperatorDirectory.from_settings(Settings(_env_file=None, marketplace_sandbox=True))
    assert sandbox.sandbox_default
    assert sandbox.authenticate("admin", sandbox_password()) is not None
    production = OperatorDirectory.from_settings(
        Settings(
            _env_file=None,
            marketplace_sandbox=False,
            google_cloud_project="p",
            session_secret="x" * 40,
        )
    )
    assert len(production) == 0
    assert production.authenticate("admin", sandbox_password()) is None
