"""`serve`: the whole backend in one process, until SIGINT or SIGTERM.

Start: (sandbox: loopback only unless --allow-remote; its secrets, kept beside the database; the
emulator. Otherwise the go-live preflight: credentials, provider id and, when pulling, the
subscription's topic, refusing to start on a failure) -> `db upgrade` -> web app (uvicorn, in a
thread) -> listener (pull, unless notifications are pushed) -> scheduler (the jobs of
`entrypoints/jobs.py`). The example app, when configured, starts in its own process alongside.
Stop, in reverse: the scheduler finishes its running job, the listener its in-flight messages,
uvicorn its open requests; then the emulator stops. Exit code 0.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from marketplace_saas.adapters.operators import (
    OperatorDirectory,
    sandbox_password,
    use_sandbox_password,
)
from marketplace_saas.entrypoints.cli._common import (
    EXIT_CONFIG,
    CliError,
    open_container,
    stop_on_signals,
)

if TYPE_CHECKING:
    from marketplace_saas.config import Settings
    from marketplace_saas.entrypoints.example_provider import ExampleProvider
    from marketplace_saas.entrypoints.listener import Listener

# What only `serve` needs (uvicorn, the web app, Alembic, the example app, the scheduler) is
# imported inside `run`: the other commands, `--help` and a configuration error start without it.


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="web app, listener and scheduler in one process")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="sandbox: listen on a non-loopback --host anyway (anyone who reaches it can act)",
    )
    parser.add_argument(
        "--no-listener",
        action="store_true",
        help="do not pull from Pub/Sub (notifications arrive by push only)",
    )
    parser.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        help="sandbox: the emulator's port (default 8780, or a free port when 8780 is taken)",
    )
    parser.set_defaults(run=run)


class WebServer:
    """uvicorn in a background thread; the main thread keeps the signals."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", server_header=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                host, port = self.server.config.host, self.server.config.port
                raise CliError(f"the web server could not listen on {host}:{port}")
            time.sleep(0.02)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def _local_url(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def run(args: argparse.Namespace) -> int:
    from marketplace_saas.adapters.db.engine import check_database
    from marketplace_saas.config import Settings
    from marketplace_saas.entrypoints.sandbox import require_loopback

    stop = stop_on_signals()
    settings = Settings()
    if args.no_listener:
        from marketplace_saas.entrypoints.web.push import push_auth_missing

        disabled = push_auth_missing(settings)
        if disabled is not None:
            raise CliError(
                f"refusing to serve with --no-listener: {disabled}. Set them, or drop "
                "--no-listener to receive notifications by pull (the push endpoint then stays "
                "disabled)"
            )
    backend_url = _local_url(args.host, args.port)
    state_line = None
    if settings.sandbox:
        require_loopback(args.host, allow_remote=args.allow_remote)
    check_database(settings.database_url)
    if settings.sandbox:
        settings, state_line = _sandbox_secrets(settings)
    settings.require_session_secret()
    if not settings.sandbox:
        refuse_unless_ready(settings, pull=not args.no_listener)
    # Checked and refused above before these load (the web app, Alembic: seconds of imports).
    from marketplace_saas.adapters.db import migrate
    from marketplace_saas.entrypoints.example_provider import attach_example_provider
    from marketplace_saas.entrypoints.jobs import jobs
    from marketplace_saas.entrypoints.scheduler import Scheduler
    from marketplace_saas.entrypoints.web.app import create_app

    with ExitStack() as stack:
        # The example app (its own process) starts while the emulator and the migrations do.
        settings, provider_app = attach_example_provider(settings, backend_url, wait=False)
        if provider_app is not None:
            stack.callback(provider_app.stop)
        sandbox = None
        if settings.sandbox:
            from marketplace_saas.entrypoints.sandbox import start_sandbox

            sandbox = start_sandbox(settings, backend_url, emulator_port=args.emulator_port)
            stack.callback(sandbox.stop)
            settings = sandbox.settings
        migrate.upgrade(settings.database_url)
        container = stack.enter_context(open_container(settings))

        web = WebServer(create_app(container), args.host, args.port)
        web.start()
        stack.callback(web.stop)

        listener = None
        pull = not args.no_listener and (sandbox is None or sandbox.delivery == "pubsub")
        if pull:  # Google's Pub/Sub client (grpc) is loaded only when it is used
            from marketplace_saas.entrypoints.listener import Listener, processing_callback

            listener = Listener(settings, processing_callback(container))
            listener.start()
            stack.callback(listener.stop)

        if provider_app is not None:  # before the hook dispatcher calls it
            provider_app.wait_ready()
        scheduler = Scheduler(container, jobs(settings))
        scheduler.start()
        stack.callback(scheduler.stop)

        text = banner(settings, backend_url, sandbox, listener, provider_app, state_line)
        print(text, flush=True)
        while not stop.wait(0.5):
            if listener is not None and listener.failed is not None:
                from marketplace_saas.entrypoints.listener import ListenerError

                error = listener.failed
                raise CliError(
                    str(ListenerError(_describe(error, listener.subscription)))
                ) from error
            if not web.alive:
                raise CliError("the web server stopped unexpectedly")
        print("stopping: finishing in-flight work", file=sys.stderr, flush=True)
    return 0


def refuse_unless_ready(settings: Settings, *, pull: bool) -> None:
    """Outside the sandbox, start only when Google accepts the credentials and the provider id
    (and, when pulling, the subscription is on the provider's topic); nothing is written before."""
    from marketplace_saas.entrypoints.golive import preflight

    failed = preflight(settings, pull=pull)
    if failed:
        reasons = "; ".join(f"{c.name}: {c.detail} (fix: {c.fix})" for c in failed)
        raise CliError(
            f"not starting: {reasons}. `marketplace-saas doctor` checks everything",
            EXIT_CONFIG,
        )


def _sandbox_secrets(settings: Settings) -> tuple[Settings, str]:
    """Take the sandbox's kept admin password and session secret (SESSION_SECRET, when set,
    wins). Returns the settings and the banner's `sandbox state` line."""
    from pydantic import SecretStr

    from marketplace_saas.entrypoints.sandbox import sandbox_secrets

    kept = sandbox_secrets(settings)
    use_sandbox_password(kept.admin_password)
    if settings.session_secret is None:
        settings = settings.model_copy(update={"session_secret": SecretStr(kept.session_secret)})
    where = str(kept.path.parent) if kept.path else "nowhere (the database is not a SQLite file)"
    return settings, where


def _describe(error: BaseException, subscription: str) -> str:
    from marketplace_saas.entrypoints.listener import describe

    return describe(error, subscription)


def banner(
    settings: Settings,
    url: str,
    sandbox: Any,
    listener: Listener | None,
    provider_app: ExampleProvider | None = None,
    state: str | None = None,
) -> str:
    from marketplace_saas.entrypoints.web.push import push_auth_missing

    lines = [
        f"marketplace-saas is running{' in SANDBOX mode' if sandbox else ''}",
        f"  sign-up page   {url}/signup",
        f"  admin console  {url}/admin",
        f"  push endpoint  {url}/pubsub/push"
        + (
            "  (disabled: set PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNT)"
            if push_auth_missing(settings)
            else ""
        ),
        f"  health         {url}/healthz  {url}/readyz  {url}/metrics",
        f"  database       {_safe_url(settings.database_url)}",
        f"  provider       {settings.provider_id}",
    ]
    if OperatorDirectory.from_settings(settings).sandbox_default:
        lines.append(f"  admin sign-in  admin / {sandbox_password()}  (sandbox only)")
    if sandbox is not None and settings.usage_tokens():
        token = sorted(settings.usage_tokens())[0]
        lines.append(f"  usage API      POST {url}/v1/usage  (Authorization: Bearer {token})")
    if state is not None:
        lines.append(f"  sandbox state  {state}  (kept across restarts)")
    if listener is not None:
        lines.append(f"  listening on   {listener.subscription}")
    if provider_app is not None:
        lines.append(f"  example app    {provider_app.url}  (receives the provisioning hooks)")
    if sandbox is not None:
        lines.append(f"  emulator       {sandbox.emulator_url}  (Procurement API, Service Control,")
        lines.append("                 sign-up tokens, customer actions under /emulator/v1)")
        how = "pushed to /pubsub/push" if sandbox.delivery == "push" else "the Pub/Sub emulator"
        lines.append(f"  notifications  {how}")
        lines.append(f"  marketplace    {sandbox.emulator_url}/marketplace  (the buyer's page)")
        if sandbox.state_file is not None:
            lines.append(f"  emulator state {sandbox.state_file}  (kept across restarts)")
        lines += ["", "Try it, in another terminal:"]
        if not sandbox.default_port:
            lines.append(f"  export MARKETPLACE_EMULATOR_URL={sandbox.emulator_url}")
        lines += [
            "  marketplace-emulator purchase --product example-product --plan basic",
            "  marketplace-saas entitlements list",
        ]
        if settings.approval_policy == "signup":
            lines += [
                "  (APPROVAL_POLICY=signup: the entitlement waits for the customer's sign-up;",
                "   `marketplace-emulator signup-token ACCOUNT --audience localhost` mints one",
                f"   to paste at {url}/signup; or",
                "   restart with APPROVAL_POLICY=auto to approve at once, as in the codelab)",
            ]
    lines += ["", "Stop with Ctrl-C."]
    return "\n".join(lines)


def _safe_url(url: str) -> str:
    from marketplace_saas.adapters.db.engine import safe_url

    return safe_url(url)
