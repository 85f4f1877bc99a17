"""A full ``verify`` of an archive in the service's shape (manifest objects of 4 lines),
rolled up, costs at most 1.05 storage requests per recording, chain objects included,
counted at the wire (issue 25: 1.5 without rollups: one GET per small manifest object
and per link)."""

from __future__ import annotations

from pathlib import Path

from archiver.simulator import SimConfig, Simulator
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer

TARGET = 1.05
CALLS = 400


async def test_a_rolled_up_service_shaped_archive_verifies_at_one_request_per_recording(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    bucket = await make_bucket()
    storage = s3_settings(bucket)
    sim = Simulator(
        SimConfig(seed=25, calls=CALLS, recording_fraction=1.0, min_size=1_000, max_size=2_000)
    )
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(tmp_path / "s.sqlite3"), manifest_batch=4, concurrency=16
        )
        _, counts = await backfill(settings, sim)
    assert counts["archived"] == CALLS, counts
    env = cli_env({**s3_storage_env(storage, seaweed), "ARCHIVER_STATE__URL": str(tmp_path / "v")})
    rolled = await run_cli("rollup", env=env, cwd=tmp_path)
    assert rolled.code == 0, rolled.out + rolled.err
    assert "1 rollup(s) cover " in rolled.out
    proxy = FaultProxy(seaweed.endpoint_url)
    async with proxy.serve() as endpoint:
        through = {**env, "ARCHIVER_STORAGE__ENDPOINT_URL": endpoint}
        verified = await run_cli("verify", env=through, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err
    assert f"verified {CALLS} object(s) from " in verified.out
    assert ": all intact;" in verified.out
    ops = {k: v for k, v in sorted(proxy.stats.items()) if k.startswith("op:")}
    per_recording = proxy.stats["requests"] / CALLS
    print(f"\n{proxy.stats['requests']} requests for {CALLS} recordings: {ops}")
    assert per_recording <= TARGET, (
        f"{per_recording:.3f} storage requests per recording (target {TARGET}): {ops}"
    )
