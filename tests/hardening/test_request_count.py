"""Storage requests per archived recording on a clean backfill, counted at the wire.

Every request the archiver sends to SeaweedFS goes through the S3 proxy
(with no fault), which counts them by S3 operation. The target (issue 14):
at most 1.05 requests per archived recording, everything included (the
recording's PUT, the manifest, its chain link and head, the id index, the
start-up checks): the recording's one PUT is the only per-recording request.
"""

from __future__ import annotations

from pathlib import Path

from archiver.simulator import SimConfig, Simulator
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import assert_exactly_once, backfill, make_settings
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer

TARGET = 1.05


async def test_a_clean_backfill_costs_one_storage_request_per_recording(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    bucket = await make_bucket()
    proxy = FaultProxy(seaweed.endpoint_url)
    sim = Simulator(
        SimConfig(seed=14, calls=300, recording_fraction=1.0, min_size=2_000, max_size=8_000)
    )
    async with proxy.serve() as endpoint, sim.serve() as base:
        storage = s3_settings(bucket, endpoint_url=endpoint)
        # The defaults a deployment has: batches of up to 1000 lines, written
        # every 10 s or at the end of the run.
        settings = make_settings(
            sim, base, storage, str(tmp_path / "s.sqlite3"), manifest_interval=10.0
        )
        _, counts = await backfill(settings, sim)
    assert counts["failed"] == 0, counts
    archived = counts["archived"]
    assert archived == 300, counts
    await assert_exactly_once(sim, s3_settings(bucket))
    ops = {k: v for k, v in sorted(proxy.stats.items()) if k.startswith("op:")}
    per_recording = proxy.stats["requests"] / archived
    print(f"\n{proxy.stats['requests']} requests for {archived} recordings: {ops}")
    assert ops.get("op:PutObject", 0) >= archived, ops
    assert per_recording <= TARGET, (
        f"{per_recording:.3f} storage requests per recording (target {TARGET}): {ops}"
    )
