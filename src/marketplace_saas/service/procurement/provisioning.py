"""Provision before approve (`PROVISION_BEFORE_APPROVE=1`): approve only once the workspace exists.

Where the lifecycle would approve an entitlement waiting in ENTITLEMENT_ACTIVATION_REQUESTED
(`decisions.approve_or_provision`, and the policies' own approvals in `decisions`), with the
policy on it does not approve; instead it:

1. sets the entitlement's `messageToUser` ("Setting up your workspace") through the Procurement
   API, so the customer sees progress in the Marketplace (a failure there is logged, not fatal);
2. enqueues `entitlement.active` with `provision_before_approve: true` (the entitlement still in
   ENTITLEMENT_ACTIVATION_REQUESTED), under the idempotency key `entitlement.active:{id}:provision`
   so that doing this twice queues one hook;
3. returns. The dispatcher delivers the hook; only when every receiver succeeded does it call
   `decisions.approve_after_provisioning`, which approves the entitlement. A failed approval
   fails the attempt: the hook is retried (same idempotency key) and the approval with it. A
   hook that dies leaves the entitlement unapproved and the dead item visible in
   `hooks list --status dead`.

Google answers the approval with ENTITLEMENT_ACTIVE, which raises the usual `entitlement.active`
(an idempotent no-op for a receiver keyed on the entitlement id).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from marketplace_saas.adapters.procurement_errors import (
    ProcurementError,
    TransientProcurementError,
)
from marketplace_saas.domain.entitlements import ACTIVATION_REQUESTED, EntitlementView
from marketplace_saas.domain.errors import NothingToDecide, ResourceNotFound
from marketplace_saas.domain.events import Hook
from marketplace_saas.domain.hooks import idempotency_key
from marketplace_saas.domain.policies import accepts_message_to_user
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.hooks.payloads import EntitlementLike, build_payload
from marketplace_saas.service.procurement import records
from marketplace_saas.service.procurement.decision_flow import (
    ApprovalResult,
    EntitlementDecision,
    run_entitlement_decision,
)
from marketplace_saas.service.unit_of_work import App, UnitOfWork

log = structlog.get_logger(__name__)

SETTING_UP_MESSAGE = "Setting up your workspace"
ACTOR = "hooks"


def provisioning_key(entitlement_id: str) -> str:
    return idempotency_key(Hook.ENTITLEMENT_ACTIVE, entitlement_id, "provision")


SET_MESSAGE = EntitlementDecision(
    action="patch_message_to_user",
    pending=accepts_message_to_user,
    done=lambda v: False,
    wanted=(
        "messageToUser can be set only in ENTITLEMENT_ACTIVATION_REQUESTED or "
        "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
    ),
    outcome="message_set",
    already="message_set",
)


def set_message_to_user(
    container: App, entitlement_id: str, *, actor: str, message: str
) -> ApprovalResult:
    """Show `message` to the customer while a provider decision is pending."""
    return run_entitlement_decision(
        container,
        entitlement_id,
        SET_MESSAGE,
        lambda v: _patch(container, entitlement_id, message),
        actor=actor,
        details={"message": message},
    )


def _patch(container: App, entitlement_id: str, message: str) -> None:
    container.procurement.patch_message_to_user(entitlement_id, message)


def _record_from_api(container: App, entitlement_id: str, actor: str) -> None:
    resource = container.procurement.get_entitlement(entitlement_id)
    if resource is None:
        raise ResourceNotFound("entitlement", entitlement_id)
    with container.unit_of_work() as uow:
        records.apply_entitlement(
            uow,
            provider_id=container.settings.provider_id,
            entitlement_id=entitlement_id,
            view=EntitlementView.from_api(resource),
            ctx=records.Context(actor=actor, now=container.now()),
        )


def begin_provisioning(container: App, entitlement_id: str, *, actor: str) -> ApprovalResult:
    """Show "Setting up your workspace" and queue the provisioning hook (safe to repeat).

    Raises `TransientProcurementError` when Google is unavailable (the caller retries).
    """
    bound = log.bind(entitlement_id=entitlement_id, actor=actor)
    recorded = True
    try:
        # Re-reads the entitlement, patches messageToUser, records what the API says.
        set_message_to_user(container, entitlement_id, actor=actor, message=SETTING_UP_MESSAGE)
    except NothingToDecide as exc:
        bound.info("provisioning.message_not_set", reason=str(exc))
    except TransientProcurementError:
        raise
    except ProcurementError as exc:  # the message is a courtesy: provisioning goes on
        bound.warning("provisioning.message_not_set", error=str(exc))
        recorded = False
    if not recorded:
        _record_from_api(container, entitlement_id, actor)
    with container.unit_of_work() as uow:
        row = uow.entitlements.get(entitlement_id)
        if row is None:
            raise ResourceNotFound("entitlement", entitlement_id)
        state = row.state
        if not enqueue_provisioning(uow, row):
            bound.info("provisioning.not_waiting", state=state)
            return ApprovalResult("entitlement", entitlement_id, "not_waiting", state)
    bound.info("provisioning.queued")
    return ApprovalResult("entitlement", entitlement_id, "provisioning", state)


def enqueue_provisioning(uow: UnitOfWork, entitlement: EntitlementLike) -> bool:
    """In the caller's transaction: queue the provisioning hook of an entitlement that waits for
    its approval (our row, or the API's view). False when it does not wait (nothing queued)."""
    if entitlement.state != ACTIVATION_REQUESTED:
        return False
    payload = build_payload(
        uow, Hook.ENTITLEMENT_ACTIVE, entitlement=entitlement, provision_before_approve=True
    )
    enqueue_hook(
        uow,
        Hook.ENTITLEMENT_ACTIVE.value,
        ordering_key=entitlement.id,
        idempotency_key=provisioning_key(entitlement.id),
        payload=payload,
    )
    return True


def provision_instead_of_approving(
    container: App, calls: CallLog, view: EntitlementView
) -> Callable[[UnitOfWork, records.Context], records.Applied]:
    """The lifecycle's approval under PROVISION_BEFORE_APPROVE: show "Setting up your workspace"
    (a call logged in `calls`), and return the write that queues the provisioning hook in the
    lifecycle's transaction. Raises `TransientProcurementError` when Google is unavailable."""
    try:
        calls.call(
            "patch_message_to_user",
            container.procurement.patch_message_to_user,
            view.id,
            SETTING_UP_MESSAGE,
            entitlement_id=view.id,
        )
    except TransientProcurementError:
        raise
    except ProcurementError as exc:  # the message is a courtesy: provisioning goes on
        log.warning("provisioning.message_not_set", entitlement_id=view.id, error=str(exc))

    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        queued = enqueue_provisioning(uow, view)
        return records.Applied(
            changed=queued, hooks=(Hook.ENTITLEMENT_ACTIVE.value,) if queued else ()
        )

    return write
