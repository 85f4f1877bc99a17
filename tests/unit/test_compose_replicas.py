"""docker/compose.yaml's "replicas" profile, checked without a Docker engine (none here
has the compose plugin): PostgreSQL and two archiver replicas sharing its state."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dotenv import dotenv_values

from archiver.setting_names import unknown_variables
from archiver.settings import Settings, load_settings, require_source

DOCKER = Path(__file__).resolve().parents[2] / "docker"
REPLICAS = ("replica-1", "replica-2")


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"])


def _env_files(service: dict[str, Any]) -> dict[str, str]:
    """What compose gives a service from its env_files: a later file wins."""
    env: dict[str, str] = {}
    for name in service["env_file"]:
        text = (DOCKER / name).read_text()
        env.update({k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v})
    return env


@pytest.fixture
def settings_of(monkeypatch, tmp_path):
    """``settings_of(service)``: the archiver's settings inside that service."""
    for name in list(os.environ):
        if name.startswith(("ARCHIVER_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def load(service: dict[str, Any]) -> Settings:
        with monkeypatch.context() as inside:
            for key, value in _env_files(service).items():
                inside.setenv(key, value)
            return load_settings()

    return load


def test_the_default_profile_is_unchanged_and_the_replicas_need_their_profile():
    services = _services()
    default = sorted(name for name, s in services.items() if "profiles" not in s)
    assert default == ["archiver", "console", "minio", "minio-init"]
    for name in ("postgres", *REPLICAS):
        assert services[name]["profiles"] == ["replicas"], name


def test_the_replicas_share_the_postgres_state_and_an_archive_of_their_own(settings_of):
    services = _services()
    postgres = services["postgres"]["environment"]
    single = settings_of(services["archiver"])
    urls = set()
    for name in REPLICAS:
        replica = services[name]
        assert replica["image"] == services["archiver"]["image"]
        assert replica["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert replica["depends_on"]["minio-init"] == {
            "condition": "service_completed_successfully"
        }
        assert "environment" not in replica  # every setting from the env files
        settings = settings_of(replica)
        require_source(settings.source)
        url = urlsplit(settings.state.url)
        assert url.scheme == "postgresql"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert (url.username, url.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert url.path == "/" + postgres["POSTGRES_DB"]
        urls.add(settings.state.url)
        # Beside the single archiver (its own SQLite state), on another archive:
        # two states on one archive are refused.
        assert settings.storage.is_s3
        assert settings.storage.bucket_and_prefix != single.storage.bucket_and_prefix
        assert settings.storage.endpoint_url == single.storage.endpoint_url
        # Short enough that a dead replica's claims move on within a minute, and
        # its leader role within 40 s.
        assert settings.lease <= 60
        assert settings.leader_lease <= 30
        # The image's healthcheck reads the service on its default port.
        assert settings.service.port == single.service.port
    assert len(urls) == 1, "the replicas must share one state"
    host_ports = [p.split(":")[0] for s in ("archiver", *REPLICAS) for p in services[s]["ports"]]
    assert len(host_ports) == len(set(host_ports)), "two services publish one host port"
    assert "postgres-data" in yaml.safe_load((DOCKER / "compose.yaml").read_text())["volumes"]


def test_the_replicas_env_file_holds_only_settings():
    text = (DOCKER / "replicas.env").read_text()
    names = [(k, "docker/replicas.env") for k in dotenv_values(stream=io.StringIO(text))]
    assert names
    assert unknown_variables(names) == []
