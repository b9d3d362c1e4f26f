"""From a fresh clone to a running sandbox: how long `make run` takes to "ready".

    python -m benchmarks setup_time [--warm N] [--cold N] [--repo PATH]

Each round clones the repository (its committed HEAD) into a new temporary directory, runs
`make run` there with none of the project's variables set, and stops the clock when `serve`
prints its banner's last line ("Stop with Ctrl-C."), the moment a user can use it. Then the
sandbox is stopped (SIGINT to the process group) and the directory removed.

- warm: uv's package cache as a developer has it after one install (a priming round, not
  counted, fills it first);
- cold: uv's cache empty (a new `UV_CACHE_DIR` per round) and pip's cache off, so every
  package is downloaded from the registry again.

Printed, and written to `benchmarks/results/setup_time.json` with the machine, the commit, the
load average at each start, the CPU seconds `make run` and its children used (start to stop),
and the locked versions of the main dependencies. No assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR, machine
from benchmarks.emulator import stop

READY = "Stop with Ctrl-C."
PROJECT_VARIABLES = (
    "MARKETPLACE_",
    "GOOGLE_",
    "PROCUREMENT_",
    "SERVICE_CONTROL_",
    "SESSION_SECRET",
    "DATABASE_URL",
    "PUBSUB_EMULATOR_HOST",
    "APPROVAL_POLICY",
    "USAGE_",
    "HOOK_",
    "ADMIN_OPERATORS",
    "VIRTUAL_ENV",
)
MAIN_DEPENDENCIES = (
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "pydantic",
    "google-api-python-client",
    "google-cloud-pubsub",
    "grpcio",
    "cryptography",
)
TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_VARIABLES)}
    env["PYTHONUNBUFFERED"] = "1"
    if cache is not None:  # cold: nothing downloaded before
        env["UV_CACHE_DIR"] = str(cache)
        env["PIP_NO_CACHE_DIR"] = "1"
    return env


def one_round(repo: Path, *, cold: bool) -> dict[str, Any]:
    """Clone, `make run` until ready, stop; the seconds each part took."""
    with tempfile.TemporaryDirectory(prefix="setup-time-") as tmp:
        folder = Path(tmp)
        clone = folder / "clone"
        started = time.monotonic()
        subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
        cloned = time.monotonic()
        serve_args = f"--port {_free_port()} --emulator-port {_free_port()}"
        env = _environment(folder / "uv-cache" if cold else None)
        log = folder / "make-run.log"
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["make", "run", f"SERVE_ARGS={serve_args}"],
                cwd=clone,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            installed_at = None
            while True:
                text = log.read_text(errors="replace")
                if installed_at is None and "marketplace-saas serve" in text:
                    installed_at = time.monotonic()
                if READY in text:
                    ready = time.monotonic()
                    break
                if process.poll() is not None or time.monotonic() - cloned > TIMEOUT:
                    raise RuntimeError(f"make run did not get ready:\n{text[-3000:]}")
                time.sleep(0.05)
        finally:
            stop(process, signal.SIGINT, timeout=60, kill_timeout=30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {
            "cache": "cold" if cold else "warm",
            "clone_seconds": round(cloned - started, 2),
            "install_seconds": round((installed_at or ready) - cloned, 2),
            "serve_seconds": round(ready - (installed_at or ready), 2),
            "make_run_to_ready_seconds": round(ready - cloned, 2),
            "load_average_at_start": round(load, 2),
            # CPU time of `make run` and everything it started, to its stop: what the set-up
            # costs whatever else the machine runs (wall time on 2 idle cores >= half of it)
            "cpu_seconds": round(cpu, 2),
        }


def locked_versions(repo: Path) -> dict[str, str]:
    text = (repo / "requirements.lock").read_text(encoding="utf-8")
    found = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", text, flags=re.MULTILINE))
    return {name: found[name] for name in MAIN_DEPENDENCIES if name in found}


def _summary(rounds: list[dict[str, Any]], cache: str) -> dict[str, Any] | None:
    mine = [r["make_run_to_ready_seconds"] for r in rounds if r["cache"] == cache]
    if not mine:
        return None
    return {"rounds": len(mine), "median": statistics.median(mine), "min": min(mine)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks setup_time")
    parser.add_argument("--warm", type=int, default=3, help="measured warm rounds (default 3)")
    parser.add_argument("--cold", type=int, default=0, help="measured cold rounds (default 0)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    if shutil.which("make") is None or shutil.which("git") is None:
        print("setup_time needs make and git")
        return 2
    rounds = []
    if args.warm:
        one_round(args.repo, cold=False)  # priming: fills uv's cache, not counted
    for cache, count in (("warm", args.warm), ("cold", args.cold)):
        for _ in range(count):
            result = one_round(args.repo, cold=cache == "cold")
            print(json.dumps(result), flush=True)
            rounds.append(result)
    makefile = (args.repo / "Makefile").read_text(encoding="utf-8")
    uv = re.search(r"^UV_VERSION := (\S+)", makefile, flags=re.MULTILINE)
    figures = {
        "machine": machine(),
        "uv": uv.group(1) if uv else None,
        "dependencies": locked_versions(args.repo),
        "warm": _summary(rounds, "warm"),
        "cold": _summary(rounds, "cold"),
        "rounds": rounds,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "setup_time.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({"warm": figures["warm"], "cold": figures["cold"]}))
    return 0
