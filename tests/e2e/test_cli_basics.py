"""The CLI as a subprocess: check, usage and configuration errors."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from archiver.models import Provider
from tests.support.cli import archiver_env, cli_env, run_cli

REPO = Path(__file__).parents[2]


async def test_check_reports_ok_against_the_simulator(sim, tmp_path):
    r = await run_cli("check", env=archiver_env(tmp_path, sim=sim), cwd=tmp_path)
    assert r.code == 0, r.err
    assert "settings: OK" in r.out
    assert "source: OK" in r.out
    assert "storage: OK" in r.out
    # check writes nothing outside _archiver/, and cleans up after itself.
    leftovers = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    assert leftovers == []


async def test_check_epacific(sim, tmp_path):
    env = archiver_env(tmp_path, sim=sim, kind=Provider.EPACIFIC)
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "extension(s) registered" in r.out


async def test_check_with_a_wrong_token_is_one_line(sim, tmp_path):
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_SOURCE__TOKEN="not-the-token-xyz")
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("archiver: source: authentication failed")
    assert "not-the-token-xyz" not in r.err + r.out
    assert "Traceback" not in r.err
    assert sim.stats["auth_failures"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"ARCHIVER_SOURCE__PAGE_SIZE": "many"},
            "ARCHIVER_SOURCE__PAGE_SIZE: Input should be a valid integer",
        ),
        ({"ARCHIVER_SOURCE__KIND": "asterisk"}, "ARCHIVER_SOURCE__KIND"),
        ({"ARCHIVER_SOURCE__TOKEN": ""}, "ARCHIVER_SOURCE__TOKEN: required"),
        ({"ARCHIVER_STORAGE__URL": "gs://bucket"}, "ARCHIVER_STORAGE__URL"),
    ],
)
async def test_bad_settings_exit_2_with_one_line(sim, tmp_path, extra, message):
    r = await run_cli("check", env=archiver_env(tmp_path, sim=sim, **extra), cwd=tmp_path)
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert message in r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize(
    "args",
    [
        ("frobnicate",),
        ("backfill",),
        ("backfill", "--since", "yesterday", "--until", "2021-02-18"),
        ("backfill", "--since", "2021-02-18", "--until", "2021-02-17"),
        ("check", "--env-file", "/nonexistent/file.env"),
    ],
)
async def test_bad_usage_exits_2_with_one_line(sim, tmp_path, args):
    r = await run_cli(*args, env=archiver_env(tmp_path, sim=sim), cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert r.err.startswith("archiver: ")


async def test_env_file_is_read(sim, tmp_path):
    env_file = tmp_path / "site.env"
    env_file.write_text(
        f"ARCHIVER_SOURCE__KIND=cdr_v2\nARCHIVER_SOURCE__BASE_URL={sim.base_url}\n"
        f"ARCHIVER_SOURCE__TOKEN={sim.config.token}\nARCHIVER_STORAGE__URL={tmp_path / 'a'}\n"
    )
    r = await run_cli("check", "--env-file", str(env_file), env=cli_env(), cwd=tmp_path)
    assert r.code == 0, r.err


async def test_version_and_help(tmp_path):
    r = await run_cli("--version", env=cli_env(), cwd=tmp_path)
    assert r.code == 0
    # One version: pyproject.toml's, as the installed package's metadata and the CLI say it.
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("archiver") == declared, "reinstall: pip install -e ."
    assert r.out == f"archiver {declared}\n"
    r = await run_cli("--help", env=cli_env(), cwd=tmp_path)
    assert r.code == 0
    for command in ("backfill", "check", "demo", "status", "retry", "simulate"):
        assert command in r.out


async def test_simulate_serves_until_sigterm(tmp_path):
    import asyncio
    import re
    import signal

    import aiohttp

    from tests.support.cli import start_cli

    proc = await start_cli("simulate", "--port", "0", "--calls", "7", env=cli_env(), cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        base = re.search(r"http://[\d.]+:\d+", line)
        assert base, line
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": "Bearer sim-token"}
            async with s.get(
                f"{base.group(0)}/v2/cdr", params={"limit": 100}, headers=headers
            ) as r:
                body = await r.json()
        assert body["total"] == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
