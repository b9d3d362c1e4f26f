"""Provisioning hooks: tell the provider's own systems what happened to a customer's service.

    outbox.py     enqueue_hook(): a hook queued in the caller's unit of work, once per key
    payloads.py   the typed payload of a hook, built from our records
    dispatch.py   the dispatcher: every outbox item delivered at least once, in order per key
    admin.py      operator actions: list, show, retry, discard (`marketplace-saas hooks`)
    ports.py      the outbox's protocol (SQL: adapters/db/hook_outbox.py)

The order rule (an item waits for every older item of its ordering key) is
`domain.hooks.BLOCKING_STATUSES`; names, payloads and the retry schedule are `domain/hooks.py`.
"""
