"""The mass-deletion guard's rule: more than a share of the live records AND more than a count."""

from __future__ import annotations

import pytest

from marketplace_saas.domain.deletion_guard import DeletionLimits, Tally, blocked_tallies


@pytest.mark.parametrize(
    ("live", "deleting", "over"),
    [
        (100, 10, False),  # exactly 10%: not more than 10%
        (100, 11, True),
        (20, 3, False),  # 15%, but not more than 3 records
        (20, 4, True),
        (4, 4, True),
        (0, 0, False),
        (1000, 3, False),
    ],
)
def test_the_default_limits_hold_above_ten_percent_and_above_three(
    live: int, deleting: int, over: bool
) -> None:
    assert Tally("entitlements", live, deleting).exceeds(DeletionLimits()) is over


def test_either_kind_over_its_limit_blocks_and_is_named() -> None:
    """Accounts within limits do not hide entitlements over them."""
    tallies = [Tally("accounts", 50, 1), Tally("entitlements", 50, 40)]
    assert blocked_tallies(tallies, DeletionLimits()) == [tallies[1]]
    assert tallies[1].describe() == "40 of 50 entitlements (80%)"


def test_custom_limits_move_the_threshold() -> None:
    """A count of 0 and a share of 0 block any deletion; a share of 1 never blocks."""
    assert Tally("accounts", 10, 1).exceeds(DeletionLimits(max_share=0.0, max_count=0))
    assert not Tally("accounts", 10, 10).exceeds(DeletionLimits(max_share=1.0, max_count=0))
