"""``verify --since/--until`` through rollups on SeaweedFS reads far fewer objects than a
full verify (GET and HEAD requests counted at the wire by the S3 proxy)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from archiver.simulator import SimConfig, Simulator
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


async def test_a_range_verify_reads_a_fraction_of_what_a_full_one_reads(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    storage = s3_settings(await make_bucket())
    env = cli_env(
        {**s3_storage_env(storage, seaweed), "ARCHIVER_STATE__URL": str(tmp_path / "f.sqlite3")}
    )
    # One writer: six days rolled up, then a day not rolled up yet (the tail).
    for seed, calls, day, days in ((21, 60, 1, 6), (22, 6, 7, 1)):
        sim = Simulator(
            SimConfig(
                seed=seed,
                calls=calls,
                start=datetime(2021, 2, day, 8, 0, tzinfo=TZ),
                span=timedelta(days=days) - timedelta(hours=12),
                recording_fraction=1.0,
                min_size=1_000,
                max_size=3_000,
            )
        )
        async with sim.serve() as base:
            settings = make_settings(
                sim, base, storage, str(tmp_path / "s.sqlite3"), manifest_batch=2
            )
            await backfill(settings, sim)
        if day == 1:
            rolled = await run_cli("rollup", env=env, cwd=tmp_path)
            assert rolled.code == 0, rolled.out + rolled.err

    counts = {}
    for name, args in (("full", ()), ("day", ("--since", "2021-02-03", "--until", "2021-02-04"))):
        proxy = FaultProxy(seaweed.endpoint_url)
        async with proxy.serve() as endpoint:
            through = cli_env({**env, **s3_storage_env(storage, seaweed, endpoint)})
            done = await run_cli("verify", *args, env=through, cwd=tmp_path)
        assert done.code == 0, done.out + done.err
        ops = {k: v for k, v in proxy.stats.items() if k.startswith("op:")}
        counts[name] = ops.get("op:GetObject", 0) + ops.get("op:HeadObject", 0)
        print(f"\nverify {name}: {proxy.stats['requests']} requests: {ops}")
        if name == "day":
            assert "RANGE through rollups" in done.out
    # Objects read (a day of six: its recordings, its rollup, the tail's links), beside
    # the whole archive's; listings stay a handful either way.
    assert counts["day"] * 3 < counts["full"], counts
