"""What the container image and the compose file say, checked by reading them.

The image itself is built and run by the container tier (tests/container/).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from dotenv import dotenv_values

from archiver.cli import build_parser
from archiver.commands import console as console_command
from archiver.commands import run as run_command
from archiver.commands import simulate as simulate_command
from archiver.pipeline.hosts import HostPolicy
from archiver.setting_names import unknown_variables
from archiver.settings import load_settings, require_source
from tests.support.web import serve

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _final_stage() -> list[str]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    return [
        line.strip()
        for line in stages[-1].splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _instruction(name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in _final_stage() if line.startswith(name + " ")]


def _env_from_dockerfile() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _instruction("ENV"):
        for part in shlex.split(line):
            key, _, value = part.partition("=")
            env[key] = value
    return env


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("ARCHIVER_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_image_runs_archiver_run_as_a_non_root_user():
    entrypoint = json.loads(_instruction("ENTRYPOINT")[0])
    cmd = json.loads(_instruction("CMD")[0])
    assert entrypoint + cmd == ["archiver", "run"]
    args = build_parser().parse_args(cmd)
    assert args.handler is run_command.run
    user = _instruction("USER")[0]
    assert user not in ("root", "0")


def test_the_image_settings_are_valid_and_listen_on_all_interfaces(clean_env):
    env = _env_from_dockerfile()
    for key, value in env.items():
        clean_env.setenv(key, value)
    settings = load_settings()
    assert settings.service.host == "0.0.0.0"
    assert settings.log_format == "json"
    state_dir = str(Path(settings.state.path).parent)
    assert json.loads(_instruction("VOLUME")[0]) == [state_dir]
    assert str(settings.service.port) in " ".join(_instruction("EXPOSE"))


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
async def test_the_healthcheck_command_follows_healthz(status, code):
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "x"}, status=status)

    async with serve({"/healthz": healthz}) as server:
        port = server.port
        check = json.loads(_instruction("HEALTHCHECK")[0].split("CMD", 1)[1])
        # python3: the Debian base the container tests build on has no `python`.
        assert check[0] == "python3"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *check[1:],
            env={**os.environ, "ARCHIVER_SERVICE__PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert await proc.wait() == code


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def _archiver_env_file(uncomment: tuple[str, ...] = ()) -> dict[str, str]:
    """The settings compose gives the archiver (its env_file), some commented lines taken in."""
    [name] = _compose()["services"]["archiver"]["env_file"]
    lines = (DOCKER / name).read_text().splitlines()
    lines = [line.removeprefix("# ") if line.startswith(uncomment) else line for line in lines]
    return {k: v for k, v in dotenv_values(stream=io.StringIO("\n".join(lines))).items() if v}


def test_compose_gives_the_archiver_valid_settings(clean_env):
    services = _compose()["services"]
    # Every setting reaches the archiver through its env_file, none set beside it.
    assert "environment" not in services["archiver"]
    for key, value in _archiver_env_file().items():
        clean_env.setenv(key, value)
    settings = load_settings()
    require_source(settings.source)
    assert settings.storage.is_s3
    assert settings.storage.endpoint_url == "http://minio:9000"
    # The simulator's recordings are on the API's own host: the guard lets them through.
    assert settings.source.base_url is not None
    HostPolicy(settings.source.recording_hosts, settings.source.base_url).check_url(
        "http://simulator:8080/recordings/x.wav"
    )
    assert services["archiver"]["stop_grace_period"] == "30s"  # above ARCHIVER_GRACE


def test_the_compose_env_file_holds_only_settings_and_object_lock_is_one_edit_away(clean_env):
    env = _archiver_env_file(
        uncomment=("# ARCHIVER_STORAGE__OBJECT_LOCK", "# ARCHIVER_STORAGE__RET")
    )
    names = [(name, "docker/archiver.env") for name in env if not name.startswith("AWS_")]
    assert unknown_variables(names) == []
    for key, value in env.items():
        clean_env.setenv(key, value)
    settings = load_settings()
    assert settings.storage.object_lock_mode == "GOVERNANCE"
    assert settings.storage.retention_days == 1
    # ...which needs a bucket made with Object Lock: compose's init makes it so.
    init = " ".join(_compose()["services"]["minio-init"]["entrypoint"])
    assert "mc mb --ignore-existing --with-lock local/recordings" in init


def test_every_image_is_pinned():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    # Both stages start FROM ${BASE}: its default is the production base.
    assert set(re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)) == {"${BASE}"}
    bases = re.findall(r"^ARG BASE=(\S+)$", dockerfile, flags=re.MULTILINE)
    assert len(bases) == 1
    images = bases + [s["image"] for s in _compose()["services"].values() if "image" in s]
    for image in images:
        name, _, tag = image.partition(":")
        assert tag, f"{image}: no tag"
        assert tag != "latest", image
        if name != "archiver":  # built here from the Dockerfile
            assert any(c.isdigit() for c in tag), f"{image}: not a pinned version"


def test_compose_simulator_command_is_a_valid_archiver_command():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    sim = compose["services"]["simulator"]
    assert sim["profiles"] == ["simulator"]
    args = build_parser().parse_args(sim["command"])
    assert args.handler is simulate_command.run
    assert args.host == "0.0.0.0"
    assert args.recent


def _health_command(service: str) -> list[str]:
    test = _compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return list(test[1:])


def test_every_compose_service_has_a_health_check_but_the_one_shot_job():
    services = _compose()["services"]
    for name, service in services.items():
        if name == "minio-init":
            # A job that runs once: the others wait for it to complete, not to be healthy.
            assert "healthcheck" not in service
            waits = [s["depends_on"].get(name) for s in services.values() if "depends_on" in s]
            assert {"condition": "service_completed_successfully"} in waits
            continue
        check = service["healthcheck"]
        assert check["test"][0] == "CMD", name
        assert check.get("retries", 3) >= 1, name


def test_compose_runs_the_console_from_the_image_on_its_own_volume(clean_env):
    services = _compose()["services"]
    console = services["console"]
    assert console["image"] == services["archiver"]["image"]
    args = build_parser().parse_args(console["command"])
    assert args.handler is console_command.run
    # The image listens on the console's port; compose publishes that port.
    env = _env_from_dockerfile()
    for key, value in {**env, **_archiver_env_file()}.items():
        clean_env.setenv(key, value)
    settings = load_settings()
    assert settings.console.host == "0.0.0.0"
    assert console["ports"] == [f"{settings.console.port}:{settings.console.port}"]
    assert settings.storage.is_s3
    [volume] = console["volumes"]
    assert volume.split(":") == ["console-data", str(Path(settings.state.path).parent)]
    assert "console-data" in _compose()["volumes"]
    assert console["depends_on"]["archiver"] == {"condition": "service_healthy"}


@pytest.mark.parametrize(
    ("service", "path", "variable"),
    [
        ("archiver", "/healthz", "ARCHIVER_SERVICE__PORT"),
        ("replica-1", "/healthz", "ARCHIVER_SERVICE__PORT"),
        ("replica-2", "/healthz", "ARCHIVER_SERVICE__PORT"),
        ("console", "/login", "ARCHIVER_CONSOLE__PORT"),
    ],
)
@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
async def test_the_compose_health_checks_ask_the_right_path_on_the_set_port(
    service, path, variable, status, code
):
    async def answer(_: web.Request) -> web.Response:
        return web.json_response({"status": "x"}, status=status)

    async with serve({path: answer}) as server:
        command = _health_command(service)
        assert command[0] == "python3"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *command[1:],
            env={**os.environ, variable: str(server.port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert await proc.wait() == code
