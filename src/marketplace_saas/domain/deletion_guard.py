"""The mass-deletion guard's rule: how many deletions one automatic sync may make on its own.

A sync marks deleted what the Procurement API no longer knows (a GET answers 404). When Google
answers 404 for everything (an incident, a mistyped MARKETPLACE_PROVIDER_ID, an emulator that
forgot its state), that would erase every customer at once. So a sync that would delete more
than `max_share` of the live records of one kind (accounts, or entitlements) AND more than
`max_count` of them stops before changing anything and waits for an operator
(`marketplace-saas sync --confirm-deletions`). Small deletions (a customer who left) go through.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_SHARE = 0.10
DEFAULT_MAX_COUNT = 3


@dataclass(frozen=True)
class DeletionLimits:
    max_share: float = DEFAULT_MAX_SHARE  # of the live records of one kind, 0..1
    max_count: int = DEFAULT_MAX_COUNT


@dataclass(frozen=True)
class Tally:
    """Of one kind of record: how many are live in our records, how many the sync would delete."""

    kind: str  # accounts | entitlements
    live: int
    deleting: int

    def exceeds(self, limits: DeletionLimits) -> bool:
        return self.deleting > limits.max_count and self.deleting > limits.max_share * self.live

    def describe(self) -> str:
        share = self.deleting / self.live if self.live else 0.0
        return f"{self.deleting} of {self.live} {self.kind} ({share:.0%})"


def blocked_tallies(tallies: list[Tally], limits: DeletionLimits) -> list[Tally]:
    """The tallies over the limits: any one of them blocks the sync."""
    return [tally for tally in tallies if tally.exceeds(limits)]
