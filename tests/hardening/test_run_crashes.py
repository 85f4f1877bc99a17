"""Crashes of the daemon: ``archiver run`` SIGKILLed at random moments while calls
keep arriving; after a final run, every recording exactly once in the storage and
in the manifest, no multipart upload left, no temporary file left."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from tests.support.cli import DAEMON, QUICK, archiver_env, s3_storage_env, start_cli
from tests.support.pipeline import assert_exactly_once, read_archive
from tests.support.seaweed import admin_client, free_ports

# Quick retries; a daemon polling every 0.3 s, in small manifest batches.
TUNING = {**QUICK, **DAEMON, "ARCHIVER_POLL_INTERVAL": "0.3", "ARCHIVER_MANIFEST_BATCH": "4"}


def _env(sim: Simulator, base: str, tmp_path: Path, storage: dict[str, str]) -> dict[str, str]:
    port = str(free_ports(1)[0])
    return archiver_env(
        tmp_path, base=base, sim=sim, storage=storage, tuning=TUNING, ARCHIVER_SERVICE__PORT=port
    )


@pytest.fixture(params=["local", "s3"])
async def target(request, tmp_path, make_bucket, s3_settings, seaweed, s3_env):
    if request.param == "local":
        root = tmp_path / "archive"
        return StorageSettings(url=str(root)), {"ARCHIVER_STORAGE__URL": str(root)}
    settings = s3_settings(await make_bucket())
    return settings, s3_storage_env(settings, seaweed)


@pytest.mark.slow
async def test_run_sigkilled_at_random_moments_then_exactly_once(target, tmp_path, seaweed):
    storage, storage_env = target
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(
            seed=23,
            calls=30,
            start=now - timedelta(minutes=40),
            span=timedelta(minutes=30),
            max_size=600_000,
            faults=Faults(slow=0.3, slow_seconds=0.15),
        )
    )
    rng = random.Random(7)
    async with sim.serve() as base:
        kills = 0
        for round_ in range(6):
            env = _env(sim, base, tmp_path, storage_env)
            proc = await start_cli("run", env=env, cwd=tmp_path)
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            if round_ % 2:
                sim.add_calls(3)  # calls keep arriving between the crashes
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            kills += 1
        # A last run, left to finish, then stopped gracefully.
        proc = await start_cli("run", env=_env(sim, base, tmp_path, storage_env), cwd=tmp_path)
        want = {c.sip_call_id for c in sim.calls if c.has_recording}
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                lines = (await read_archive(storage)).lines
                if {line["sip_call_id"] for line in lines} >= want:
                    break
                await asyncio.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert kills == 6
    await assert_exactly_once(sim, storage)
    if storage.is_s3:
        async with admin_client(seaweed) as client:
            bucket = storage.bucket_and_prefix[0]
            uploads = await client.list_multipart_uploads(Bucket=bucket)
            assert uploads.get("Uploads", []) == []
    else:
        assert [p for p in Path(storage.url).rglob("*") if ".partial" in p.name] == []
