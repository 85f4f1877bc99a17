"""deploy/kubernetes: the manifests name only real settings, probe the real paths on
the ports the settings choose, run the image's non-root user on a read-only root,
and keep a replica through disruptions."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from archiver.cli import build_parser
from archiver.commands import console as console_command
from archiver.commands import run as run_command
from archiver.setting_names import known_variables
from archiver.settings import Settings, load_settings, require_source
from tests.deploy.kit import DEPLOY, ROOT

KUBE = DEPLOY / "kubernetes"
# What the Secret may hold besides ARCHIVER_* settings: the standard variables the
# archiver's libraries read (botocore's credentials, libpq's password).
STANDARD = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD"}
LIVENESS = {"run": "/healthz", "console": "/login"}
READINESS = {"run": "/readyz", "console": "/login"}


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _image_env() -> dict[str, str]:
    text = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    final = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for part in line[4:].split():
                key, _, value = part.partition("=")
                env[key] = value
    return env


def _image_uid() -> int:
    match = re.search(r"useradd --uid (\d+)", (ROOT / "docker" / "Dockerfile").read_text())
    assert match
    return int(match.group(1))


@pytest.fixture
def settings(monkeypatch, tmp_path) -> Settings:
    """The settings a pod gets: the image's ENV, then the ConfigMap, then the Secret."""
    for name in list(os.environ):
        if name.startswith(("ARCHIVER_", "AWS_", "PG")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {
        **_image_env(),
        **_one("ConfigMap", "archiver-settings")["data"],
        **_one("Secret", "archiver-secrets")["stringData"],
    }
    for key, value in env.items():
        if key.startswith("ARCHIVER_"):
            monkeypatch.setenv(key, value)
    return load_settings()


def _container(deployment: str) -> dict[str, Any]:
    [container] = _one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    files = sorted(p.name for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == files


def test_the_manifests_name_only_real_settings():
    known = known_variables()
    names = set(_one("ConfigMap", "archiver-settings")["data"])
    names |= set(_one("Secret", "archiver-secrets")["stringData"])
    for doc in _documents():
        text = yaml.safe_dump(doc)
        names |= set(re.findall(r"\bARCHIVER_[A-Z0-9_]*[A-Z0-9]\b", text))
    archiver = {n for n in names if n.startswith("ARCHIVER_")}
    assert archiver - known == set(), "not settings"
    assert names - archiver <= STANDARD


def test_secrets_are_in_the_secret_and_settings_in_the_configmap():
    config = _one("ConfigMap", "archiver-settings")["data"]
    secret = _one("Secret", "archiver-secrets")["stringData"]
    assert "PGPASSWORD" in secret
    for name, value in config.items():
        assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)$", name), name
        if "://" in value:
            assert urlsplit(value).password is None, f"{name} carries a password"
    for name in secret:
        assert name not in config, name


def test_the_settings_are_valid_and_replicas_share_postgres(settings):
    require_source(settings.source)
    assert settings.state.is_postgres
    assert settings.service.host == "0.0.0.0"
    assert settings.console.host == "0.0.0.0"
    deployment = _one("Deployment", "archiver-run")
    assert deployment["spec"]["replicas"] >= 2
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.grace


@pytest.mark.parametrize(
    ("deployment", "role", "handler"),
    [
        ("archiver-run", "run", run_command.run),
        ("archiver-console", "console", console_command.run),
    ],
)
def test_probes_ask_the_right_paths_on_the_ports_the_settings_choose(
    settings, deployment, role, handler
):
    container = _container(deployment)
    assert build_parser().parse_args(container["args"]).handler is handler
    port = settings.service.port if role == "run" else settings.console.port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == LIVENESS[role]
    assert probes["startupProbe"]["path"] == LIVENESS[role]
    assert probes["readinessProbe"]["path"] == READINESS[role]
    for probe in probes.values():
        assert named[probe["port"]] == port


def test_the_services_reach_the_ports_the_settings_choose(settings):
    for service, deployment, port in [
        ("archiver-run", "archiver-run", settings.service.port),
        ("archiver-console", "archiver-console", settings.console.port),
    ]:
        spec = _one("Service", service)["spec"]
        labels = _one("Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"].items() <= labels.items()
        named = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
        [entry] = spec["ports"]
        assert named[entry["targetPort"]] == port
    notes = _one("Deployment", "archiver-run")["spec"]["template"]["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == settings.service.port
    assert notes["prometheus.io/path"] == "/metrics"


def test_the_disruption_budget_keeps_a_replica():
    budget = _one("PodDisruptionBudget", "archiver-run")["spec"]
    deployment = _one("Deployment", "archiver-run")["spec"]
    assert (
        budget["selector"]["matchLabels"].items()
        <= deployment["template"]["metadata"]["labels"].items()
    )
    assert 1 <= budget["minAvailable"] < deployment["replicas"]


@pytest.mark.parametrize("deployment", ["archiver-run", "archiver-console"])
def test_pods_run_the_image_s_user_on_a_read_only_root(settings, deployment):
    pod = _one("Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _image_uid()
    assert pod["automountServiceAccountToken"] is False
    container = _container(deployment)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # Writable: /tmp and the image's volume (the console's index, the console's
    # users file read-only from its Secret).
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/archiver"} <= set(mounts)
    if deployment == "archiver-console":
        assert Path(settings.console.index_path).parent == Path("/var/lib/archiver")
        users = Path(settings.console.users_file)
        assert mounts[str(users.parent)]["readOnly"] is True
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
