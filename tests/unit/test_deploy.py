"""The deployment files say only what the code has: the manifests parse, and every command,
variable, port and probe path they name exists (the image itself cannot be built here: no Docker
daemon, no base image to fetch; see docs/deploy.md)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute

from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted(DEPLOY.rglob("*.yaml"))
# Read by the CLI itself (entrypoints/cli/_common.py), not by Settings.
CLI_VARIABLES = {"LOG_LEVEL", "LOG_FORMAT"}
PORT = 8080


def documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                yield path, document


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container spec in a Deployment, Job (batch or Cloud Run) or Cloud Run service."""
    found: list[dict[str, Any]] = []
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "containers":
                    found.extend(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def known_variables() -> set[str]:
    aliases = {str(field.alias) for field in Settings.model_fields.values() if field.alias}
    return aliases | CLI_VARIABLES


def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def routes() -> set[str]:
    """Every path the web app serves (the routers `create_app` includes)."""
    import importlib

    from marketplace_saas.entrypoints.web.app import ROUTER_MODULES

    paths: set[str] = set()
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"marketplace_saas.entrypoints.web.{name}")
        paths |= {r.path for r in module.router.routes if isinstance(r, APIRoute)}
    return paths


def test_every_manifest_parses_and_names_its_kind() -> None:
    kinds = {(path.name, doc["kind"]) for path, doc in documents()}
    assert ("deployment.yaml", "Deployment") in kinds
    assert ("migrate-job.yaml", "Job") in kinds
    assert ("service.yaml", "Service") in kinds
    assert len(MANIFESTS) >= 9


def test_every_command_the_manifests_and_the_image_run_is_a_real_command() -> None:
    parser = build_parser()
    commands = [c["args"] for _, doc in documents() for c in containers(doc) if "args" in c]
    entrypoint = dict(dockerfile())["ENTRYPOINT"]
    default = json.loads(dict(dockerfile())["CMD"])
    assert json.loads(entrypoint) == ["marketplace-saas"]
    for args in [*commands, default]:
        parsed = parser.parse_args(args)  # exits (fails the test) on an unknown command or flag
        assert callable(parsed.run), args
    assert ["db", "upgrade"] in commands
    assert any(args[0] == "serve" for args in commands)


def test_every_variable_the_manifests_set_is_read_by_the_code() -> None:
    known = known_variables()
    named: set[str] = set()
    for _path, doc in documents():
        for container in containers(doc):
            named |= {env["name"] for env in container.get("env", [])}
        if doc["kind"] in ("ConfigMap", "Secret"):
            data = {**doc.get("data", {}), **doc.get("stringData", {})}
            named |= {key for key in data if key.isupper()}
    assert named - known == set()
    assert {"SESSION_SECRET", "DATABASE_URL", "MARKETPLACE_SANDBOX"} <= named


def test_the_session_secret_and_database_url_come_from_secrets() -> None:
    for path, doc in documents():
        for container in containers(doc):
            for env in container.get("env", []):
                if env["name"] in ("SESSION_SECRET", "DATABASE_URL"):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (path.name, env)
        if doc["kind"] == "ConfigMap":
            assert not {"SESSION_SECRET", "DATABASE_URL"} & set(doc["data"]), path.name


def test_ports_and_probes_match_the_server() -> None:
    paths = routes()
    probes: dict[str, str] = {}
    for path, doc in documents():
        for container in containers(doc):
            args = container.get("args", [])
            if args[:1] != ["serve"]:
                continue
            assert args[args.index("--port") + 1] == str(PORT), path.name
            assert [p["containerPort"] for p in container["ports"]] == [PORT]
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                if kind in container:
                    get = container[kind]["httpGet"]
                    assert get["port"] == PORT
                    assert get["path"] in paths, (path.name, kind)
                    probes[f"{path.parent.name}:{kind}"] = get["path"]
    assert probes["kubernetes:readinessProbe"] == "/readyz"
    assert probes["kubernetes:livenessProbe"] == "/healthz"
    assert probes["cloudrun:livenessProbe"] == "/healthz"
    service = next(
        doc for p, doc in documents() if p.parent.name == "kubernetes" and doc["kind"] == "Service"
    )
    assert service["spec"]["ports"][0]["targetPort"] == PORT


def test_the_kubernetes_deployment_runs_several_non_root_replicas() -> None:
    deployment = next(doc for _, doc in documents() if doc["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_dockerfile_is_slim_non_root_installs_the_wheel_and_probes_healthz() -> None:
    steps = dockerfile()
    bases = [value for kind, value in steps if kind == "FROM"]
    assert bases
    assert all(base.split()[0].endswith("-slim") for base in bases)
    assert any(kind == "RUN" and "pip wheel" in value for kind, value in steps)
    assert any(
        kind == "RUN" and "pip install" in value and ".whl" in value for kind, value in steps
    )
    user = [value for kind, value in steps if kind == "USER"][-1]
    assert user not in ("root", "0")
    assert dict(steps)["EXPOSE"] == str(PORT)
    healthcheck = dict(steps)["HEALTHCHECK"]
    assert f"127.0.0.1:{PORT}/healthz" in healthcheck
    assert "/healthz" in routes()


def test_the_kustomization_lists_every_kubernetes_manifest_but_the_secret_template() -> None:
    folder = DEPLOY / "kubernetes"
    listed = set(yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_renders_the_kustomization_without_a_cluster() -> None:
    result = subprocess.run(
        shlex.split(f"kubectl kustomize {DEPLOY / 'kubernetes'}"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
