"""What the container image and the compose file run, checked without a Docker engine."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from dotenv import dotenv_values

from archiver.cli import build_parser
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
        assert check[0] == "python"
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
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
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


def _build_stage() -> list[tuple[str, str]]:
    """The build stage's instructions, in order: (INSTRUCTION, arguments)."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    stage = re.split(r"^FROM ", text, flags=re.MULTILINE)[1]
    steps = []
    for line in stage.splitlines()[1:]:
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, rest = line.strip().partition(" ")
            steps.append((name, rest))
    return steps


@pytest.mark.slow
def test_the_image_builds_from_exactly_what_the_dockerfile_copies(tmp_path: Path) -> None:
    """No container engine runs here: the build stage is replayed instead, from a
    context holding only what its COPY lines take, with its RUN lines run for real
    by a fresh Python with nothing installed (as in the base image)."""
    repo = DOCKER.parent
    fresh = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True)
    env = {**os.environ, "PATH": f"{fresh / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    root = tmp_path / "image"
    workdir = root
    for name, args in _build_stage():
        if name == "WORKDIR":
            workdir = root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif name == "COPY":
            *sources, dest = shlex.split(args)
            for source in sources:
                target = (
                    workdir / dest / Path(source).name if dest.endswith("/") else workdir / dest
                )
                if (repo / source).is_dir():
                    shutil.copytree(
                        repo / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(repo / source, target)
        elif name == "RUN":
            command = args.replace("/install", str(root / "install"))
            done = subprocess.run(
                ["sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"RUN {args}\n{done.stdout}\n{done.stderr}"
        else:
            pytest.fail(f"the build stage has an instruction this test cannot replay: {name}")
    # What the final stage copies to /usr/local: the program and all it needs.
    installed = root / "install"
    [site] = installed.glob("lib/python3*/site-packages")
    assert (installed / "bin" / "archiver").is_file()
    assert (site / "archiver" / "console" / "templates" / "base.html").is_file()
    assert (site / "archiver" / "console" / "static" / "console.css").is_file()
    run_env = {**env, "PYTHONPATH": str(site)}
    for argv in (["--version"], ["run", "--help"], ["console", "--help"]):
        done = subprocess.run(
            [str(fresh / "bin" / "python"), "-m", "archiver", *argv],
            cwd=tmp_path,
            env=run_env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (argv, done.stderr)
    done = subprocess.run(
        [str(fresh / "bin" / "python"), "-c", "import archiver.console.app, aiobotocore"],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
