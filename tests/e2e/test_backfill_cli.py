"""``archiver backfill`` as a subprocess: crashes, signals, exit codes, dry run, demo."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from tests.support.cli import QUICK, archiver_env, cli_env, run_cli, s3_storage_env, start_cli
from tests.support.pipeline import assert_exactly_once
from tests.support.seaweed import admin_client

SINCE = "2021-02-17 08:00"
UNTIL = "2021-02-17 14:00"


# Quick retries; half-hour windows, small manifest batches.
TUNING = {**QUICK, "ARCHIVER_WINDOW": "1800", "ARCHIVER_MANIFEST_BATCH": "5"}


def _env(sim: Simulator, base: str, tmp_path: Path, storage: dict[str, str], **extra: str):
    return archiver_env(tmp_path, base=base, sim=sim, storage=storage, tuning=TUNING, **extra)


@pytest.fixture(params=["local", "s3"])
async def target(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(StorageSettings for checking, environment variables for the CLI)."""
    if request.param == "local":
        root = tmp_path / "archive"
        return StorageSettings(url=str(root)), {"ARCHIVER_STORAGE__URL": str(root)}
    bucket = await make_bucket()
    settings = s3_settings(bucket)
    return settings, s3_storage_env(settings, s3_env)


async def _no_leftovers(storage: StorageSettings, seaweed) -> None:
    if storage.is_s3:
        bucket, _ = storage.bucket_and_prefix
        async with admin_client(seaweed) as client:
            uploads = await client.list_multipart_uploads(Bucket=bucket)
            assert uploads.get("Uploads", []) == [], "an orphan multipart upload"
    else:
        partial = [p for p in Path(storage.url).rglob("*") if ".partial" in p.name]
        assert partial == [], "a temporary file left behind"


@pytest.mark.slow
async def test_sigkill_at_random_moments_then_finish_exactly_once(target, tmp_path, seaweed):
    storage, storage_env = target
    sim = Simulator(
        SimConfig(seed=17, calls=60, max_size=700_000, faults=Faults(slow=0.3, slow_seconds=0.15))
    )
    rng = random.Random(4)
    async with sim.serve() as base:
        env = _env(sim, base, tmp_path, storage_env)
        kills = 0
        for _ in range(5):
            proc = await start_cli(
                "backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
            )
            try:
                await asyncio.wait_for(proc.wait(), timeout=rng.uniform(0.4, 2.0))
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            await proc.wait()
        assert kills >= 3, "the runs finished before they could be killed: make them slower"
        final = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        assert final.code == 0, final.out + final.err
    await assert_exactly_once(sim, storage)
    await _no_leftovers(storage, seaweed)


async def test_sigterm_stops_gracefully_and_a_rerun_finishes(tmp_path):
    sim = Simulator(
        SimConfig(seed=3, calls=40, max_size=500_000, faults=Faults(slow=0.5, slow_seconds=0.2))
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        env = _env(sim, base, tmp_path, {"ARCHIVER_STORAGE__URL": storage.url}, ARCHIVER_GRACE="5")
        proc = await start_cli(
            "backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
        )
        deadline = asyncio.get_running_loop().time() + 30
        while sim.stats["recording_requests"] < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert proc.returncode is None, "finished before the signal: make it slower"
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
        assert proc.returncode == 130, err.decode()
        assert "run the same command again" in err.decode()
        assert "Traceback" not in err.decode()
        final = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        assert final.code == 0, final.err
    await assert_exactly_once(sim, storage)
    await _no_leftovers(storage, None)


async def test_permanent_failures_exit_3_listing_each(tmp_path):
    sim = Simulator(
        SimConfig(seed=5, calls=8, faults=Faults(not_ready_fraction=1.0, not_ready_seconds=3600))
    )
    async with sim.serve() as base:
        env = _env(sim, base, tmp_path, {"ARCHIVER_STORAGE__URL": str(tmp_path / "a")})
        r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert r.code == 3, r.err
    with_recording = [c for c in sim.calls if c.has_recording]
    assert f"{len(with_recording)} recording(s) failed permanently" in r.out
    for call in with_recording:
        assert call.sip_call_id in r.out
    assert "recording never became available" in r.out


async def test_dry_run_counts_and_writes_nothing(tmp_path):
    sim = Simulator(SimConfig(seed=6, calls=25))
    async with sim.serve() as base:
        env = _env(sim, base, tmp_path, {"ARCHIVER_STORAGE__URL": str(tmp_path / "a")})
        r = await run_cli(
            "backfill", "--since", SINCE, "--until", UNTIL, "--dry-run", env=env, cwd=tmp_path
        )
    assert r.code == 0, r.err
    with_recording = sum(1 for c in sim.calls if c.has_recording)
    assert f"dry run: 25 CDR(s), {with_recording} with a recording" in r.out
    assert sim.stats["recording_requests"] == 0
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "state.sqlite3").exists()


async def test_status_and_retry(tmp_path):
    sim = Simulator(
        SimConfig(seed=5, calls=8, faults=Faults(not_ready_fraction=1.0, not_ready_seconds=3600))
    )
    async with sim.serve() as base:
        env = _env(sim, base, tmp_path, {"ARCHIVER_STORAGE__URL": str(tmp_path / "a")})
        await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        failed = sum(1 for c in sim.calls if c.has_recording)
        status = await run_cli("status", env=env, cwd=tmp_path)
        assert status.code == 0
        assert f"failed         {failed}" in status.out
        assert "recording never became available" in status.out
        sim.set_faults(Faults())
        retry = await run_cli("retry", env=env, cwd=tmp_path)
        assert f"{failed} failed recording(s) queued again" in retry.out
        again = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        assert again.code == 0, again.out
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "a")))


async def test_demo_works_in_an_empty_directory(tmp_path):
    r = await run_cli("demo", env=cli_env(), cwd=tmp_path, timeout=120)
    assert r.code == 0, r.err
    assert "archived" in r.out
    manifests = list((tmp_path / "archive" / "manifests").rglob("*.jsonl"))
    assert manifests
    recordings = [p for p in (tmp_path / "archive" / "recordings").rglob("*") if p.is_file()]
    lines = sum(len(p.read_text().splitlines()) for p in manifests)
    assert lines == len(recordings) > 0
    # Issue 12: the demo keeps a state of its own, never the default one.
    assert (tmp_path / "archiver-demo-state.sqlite3").exists()
    assert not (tmp_path / "archiver-state.sqlite3").exists()
