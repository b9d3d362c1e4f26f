"""Real infrastructure for the tests: the Cloud Pub/Sub emulator and PostgreSQL.

Missing infrastructure is a skip on a laptop and a failure when `CI` is set, so that CI can never
pass by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/postgres"
)


def infra_missing(reason: str) -> None:
    """Skip locally; fail under CI (where the infrastructure must be present)."""
    if os.environ.get("CI"):
        pytest.fail(f"required test infrastructure is missing under CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def find_pubsub_emulator() -> str | None:
    """The Pub/Sub emulator's launcher: $PUBSUB_EMULATOR_BIN, the gcloud SDK, or known paths."""
    explicit = os.environ.get("PUBSUB_EMULATOR_BIN")
    if explicit:
        return explicit if Path(explicit).exists() else None
    candidates: list[Path] = []
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk_root = Path(os.path.realpath(gcloud)).parent.parent
        candidates.append(sdk_root / "platform/pubsub-emulator/bin/cloud-pubsub-emulator")
    candidates += [
        Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"),
        Path("/usr/share/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"),
        Path("/opt/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"),
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return None


@contextmanager
def pubsub_emulator(log_dir: Path) -> Iterator[str]:
    """Start the real Pub/Sub emulator on a free port; yield 'host:port'; stop it afterwards."""
    binary = find_pubsub_emulator()
    if binary is None:
        infra_missing("the Cloud Pub/Sub emulator is not installed (set PUBSUB_EMULATOR_BIN)")
    if shutil.which("java") is None:
        infra_missing("the Pub/Sub emulator needs Java, which is not installed")
    assert binary is not None
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"pubsub-emulator-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if not wait_for_port(port, timeout=60):
            pytest.fail(f"the Pub/Sub emulator did not start; see {log_path}")
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=10)


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a throw-away PostgreSQL database; yield its SQLAlchemy URL; drop it afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # any driver or connection error means: no PostgreSQL here
        admin.dispose()
        infra_missing(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    admin.dispose()
    with _scratch_database("mps_test", template=None) as url:
        yield url


@contextmanager
def postgres_clone(template_url: str) -> Iterator[str]:
    """A new PostgreSQL database copied from `template_url`'s database (fast: no migrations)."""
    with _scratch_database("mps_case", template=template_url.rsplit("/", 1)[1]) as url:
        yield url


@contextmanager
def _scratch_database(prefix: str, template: str | None) -> Iterator[str]:
    """CREATE DATABASE (optionally from a template), yield its URL, then DROP it, even if in use."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
