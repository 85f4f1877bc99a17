"""Debian's Prometheus scraping a real ``archiver run``: it loads the alert rules and
evaluates each without error, and every dashboard panel's query runs on the data."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from archiver.simulator import SimConfig, Simulator
from tests.deploy.kit import RULES, alert_rules, dashboard_exprs
from tests.support.cli import DAEMON, archiver_env, start_cli
from tests.support.seaweed import free_ports


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            if await check():
                return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def _prometheus(tmp_path: Path, target: str) -> AsyncIterator[str]:
    """Prometheus on loopback, scraping ``target`` as job "archiver" every second."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not found: apt-get install -y prometheus (.ci/run does it)")
    [port] = free_ports(1)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {"job_name": "archiver", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    proc = await asyncio.create_subprocess_exec(
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 60)


async def _api(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with http.get(url, params=params) as resp:
        body = await resp.json()
    assert body["status"] == "success", body
    return body["data"]


async def test_prometheus_evaluates_every_rule_and_panel_on_a_real_run(tmp_path):
    sim = Simulator(
        SimConfig(
            seed=7,
            calls=6,
            recording_fraction=1.0,
            start=datetime.now(UTC) - timedelta(minutes=30),
            span=timedelta(minutes=20),
            max_size=100_000,
        )
    )
    [port] = free_ports(1)
    async with sim.serve():
        env = archiver_env(
            tmp_path,
            sim=sim,
            tuning={**DAEMON, "ARCHIVER_POLL_INTERVAL": "0.5", "ARCHIVER_SOURCE__RATE_LIMIT": "0"},
            ARCHIVER_SERVICE__PORT=str(port),
        )
        run = await start_cli("run", env=env, cwd=tmp_path)
        try:
            async with (
                _prometheus(tmp_path, f"127.0.0.1:{port}") as prom,
                aiohttp.ClientSession() as http,
            ):
                query = f"{prom}/api/v1/query"

                async def archived_and_scraped() -> bool:
                    data = await _api(
                        http, query, query='archiver_recordings_archived_total{job="archiver"}'
                    )
                    return bool(data["result"]) and float(data["result"][0]["value"][1]) == 6

                await _until(archived_and_scraped, 90, "Prometheus to see the recordings archived")

                async def rules_evaluated() -> bool:
                    data = await _api(http, f"{prom}/api/v1/rules")
                    rules = [r for g in data["groups"] for r in g["rules"]]
                    return len(rules) == len(alert_rules()) and all(
                        r["lastEvaluation"] > "2000" for r in rules
                    )

                await _until(rules_evaluated, 60, "every rule evaluated")
                data = await _api(http, f"{prom}/api/v1/rules")
                for rule in (r for g in data["groups"] for r in g["rules"]):
                    assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
                # The run is up and leads: once the rules have seen a scrape, none of
                # these is even pending (the evaluations before the first scrape had
                # nothing, so ArchiverAbsent may be pending at first).
                quiet = {"ArchiverDown", "ArchiverAbsent", "ArchiverNoLeader"}

                async def settled() -> bool:
                    data = await _api(http, f"{prom}/api/v1/rules")
                    rules = [r for g in data["groups"] for r in g["rules"]]
                    return not {r["name"] for r in rules if r["alerts"]} & quiet

                await _until(settled, 30, f"{sorted(quiet)} quiet while the run is up")

                for expr in dashboard_exprs():
                    await _api(http, query, query=expr.replace("$__rate_interval", "1m"))
                lag = await _api(http, query, query='max(archiver_lag_seconds{job="archiver"})')
                assert lag["result"], "a panel's series is missing"
        finally:
            run.send_signal(signal.SIGTERM)
            await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0
