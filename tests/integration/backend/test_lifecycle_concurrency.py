"""Notifications handled by several workers at once (the listener's callbacks run in threads)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Entitlement, HookOutbox, InboxMessage
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import encode

pytestmark = pytest.mark.integration


def test_concurrent_workers_with_duplicates_end_at_the_truth_with_one_hook_each(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto")
    accounts = [emulator.procurement.purchase(PROVIDER, "example-product", "basic")[0]]
    for index in range(7):
        emulator.procurement.purchase(
            PROVIDER, "example-product", "pro", account_id=accounts[index % len(accounts)].id
        )
        if index == 2:
            accounts.append(emulator.procurement.purchase(PROVIDER, "example-product", "basic")[0])
    seen = 0
    rounds = 0
    queue: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        while rounds < 30:
            published = emulator.notifications(PROVIDER)
            queue += published[seen:] * 2  # every message delivered twice, concurrently
            seen = len(published)
            if not queue:
                break
            batch, queue = queue, []
            results = list(pool.map(lambda p: (p, handle_message(container, encode(p))), batch))
            queue = [p for p, d in results if d is Disposition.NACK]
            rounds += 1
    assert not queue
    truth = {e.id: (e.state, e.plan) for e in emulator.procurement.entitlements(PROVIDER)}
    with container.sessions() as session:
        ours = {
            r.id: (r.state, r.plan)
            for r in session.scalars(sa.select(Entitlement).where(Entitlement.service_enabled))
        }
        statuses = set(session.scalars(sa.select(InboxMessage.status)))
        active_hooks = session.scalar(
            sa.select(sa.func.count())
            .select_from(HookOutbox)
            .where(HookOutbox.hook == "entitlement.active")
        )
    assert ours == truth
    assert all(state == "ENTITLEMENT_ACTIVE" for state, _ in truth.values())
    assert statuses == {"processed"}
    assert active_hooks == len(truth)
