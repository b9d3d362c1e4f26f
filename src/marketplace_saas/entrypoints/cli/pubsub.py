"""`pubsub create-subscription`: our subscription on the provider's topic (codelab step 2)."""

from __future__ import annotations

import argparse
from typing import Any

from marketplace_saas.entrypoints.cli._common import CliError
from marketplace_saas.entrypoints.cli._output import add_json_flag, emit


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("pubsub", help="the Pub/Sub subscription")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = commands.add_parser(
        "create-subscription",
        help="create projects/{GOOGLE_CLOUD_PROJECT}/subscriptions/{MARKETPLACE_SUBSCRIPTION}",
    )
    add_json_flag(create)
    create.set_defaults(run=run_create)


def run_create(args: argparse.Namespace) -> int:
    from marketplace_saas.adapters import pubsub  # Google's Pub/Sub client, when it is used
    from marketplace_saas.config import Settings

    settings = Settings()
    try:
        result = pubsub.create_subscription(settings)
    except pubsub.PubSubError as exc:
        raise CliError(str(exc)) from exc
    if result.created:
        message = f"created subscription {result.path} on topic {result.topic}"
    else:
        message = f"subscription {result.path} already exists (topic {result.topic})"
    emit(
        args,
        {"subscription": result.path, "topic": result.topic, "created": result.created},
        message=message,
    )
    return 0
