"""What the container tests share: the settings a container gets, waiting on its endpoints."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import yaml

from archiver.settings import StorageSettings
from archiver.simulator import Simulator
from tests.support.cli import DAEMON, s3_storage_env, source_env
from tests.support.pipeline import read_archive
from tests.support.podman import REPO, Done, podman, write_env_file
from tests.support.seaweed import SeaweedServer

# A daemon quick to poll and retry (seconds, not the production minutes); the
# grace and everything else as the image ships it.
TUNING = {
    **DAEMON,
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_POLL_INTERVAL": "0.5",
    "ARCHIVER_MANIFEST_INTERVAL": "0.3",
    "ARCHIVER_RETRY__INITIAL": "0.1",
    "ARCHIVER_RETRY__MAXIMUM": "0.3",
    "ARCHIVER_SERVICE__PROBE_INTERVAL": "0.5",
}


def container_env(
    path: Path,
    sim: Simulator,
    storage: StorageSettings,
    seaweed: SeaweedServer,
    port: int,
    **extra: str,
) -> str:
    """The ``--env-file`` of a run container: the simulator, SeaweedFS, its port."""
    env = {
        **source_env(sim.base_url, sim),
        **s3_storage_env(storage, seaweed),
        **TUNING,
        "ARCHIVER_SERVICE__PORT": str(port),
        **extra,
    }
    return write_env_file(path, env)


async def http_get(url: str) -> tuple[int, str]:
    """Status and body; (0, error) when nothing answers yet."""
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
            return r.status, await r.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, str(exc)


async def wait_for(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    logs_of: str | None = None,
) -> None:
    """Poll ``predicate`` until true; on timeout fail with the container's last log lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.25)
    tail = ""
    if logs_of is not None:
        logs = await podman("podman", "logs", "--tail", "30", logs_of)
        tail = "\n" + logs.out + logs.err
    raise AssertionError(f"timed out waiting for {what}{tail}")


def metric(text: str, name: str) -> float:
    """One unlabelled sample of a /metrics body."""
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def archived_ids(storage: StorageSettings) -> set[str]:
    """The calls the manifest lists."""
    return {line["sip_call_id"] for line in (await read_archive(storage)).lines}


def expected_ids(sim: Simulator) -> set[str]:
    """The calls with a recording the simulator serves."""
    return {c.sip_call_id for c in sim.calls if c.has_recording}


def check(done: Done, what: str) -> Done:
    """Assert a podman command succeeded, with its output in the message."""
    assert done.code == 0, f"{what}: exit {done.code}\n{done.out}\n{done.err}"
    return done


def compose_health(service: str) -> list[str]:
    """The command of docker/compose.yaml's health check of ``service`` (after "CMD")."""
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return list(test[1:])
