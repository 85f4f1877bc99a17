"""The manifest chain under SIGKILL: killed at each step of writing a manifest batch.

Each step gets an hour of calls of its own: ``archiver backfill`` of that hour
is SIGKILLed the moment the fault proxy holds the chosen request (before the
storage carries it out, or after it did but before the archiver heard back),
the same command is run again to completion, and the default ``verify`` of the
whole archive must pass. The bucket has Object Lock (GOVERNANCE): the
manifests and links a rerun writes again are conditional writes, so nothing
under retention is rewritten; only the head gains versions.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.simulator import SimConfig, Simulator
from tests.hardening.test_crashes import Stage, Trap
from tests.support.cli import archiver_env, run_cli, s3_storage_env, start_cli
from tests.support.faultproxy import FaultProxy, S3Request
from tests.support.pipeline import assert_exactly_once
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer, admin_client


def manifest_put(r: S3Request) -> bool:
    return r.operation == "PutObject" and "/manifests/" in r.path


def link_put(r: S3Request) -> bool:
    chain = r.operation == "PutObject" and "/_archiver/chain/" in r.path
    return chain and not r.path.endswith("/head.json")


def head_read(r: S3Request) -> bool:
    return r.operation == "GetObject" and r.path.endswith("/head.json")


def head_put(r: S3Request) -> bool:
    return r.operation == "PutObject" and r.path.endswith("/head.json")


# Every step of writing one batch, in order: manifest, link, head (no id-index
# pointers since issue 14: get reads a local index of the manifests).
STEPS: list[tuple[Callable[[S3Request], bool], Stage]] = [
    (manifest_put, "before"),
    (manifest_put, "after"),
    (link_put, "before"),
    (link_put, "after"),
    (head_read, "before"),
    (head_put, "before"),
    (head_put, "after"),
]

# CI kills at three of the seven steps, one per object a batch writes (the
# manifest written but not linked, the link written but the head not moved, the
# head moved but not heard back); every step runs with ``-m ondemand``.
IN_CI = [STEPS[1], STEPS[3], STEPS[6]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(IN_CI, id="three-steps"),
        pytest.param(STEPS, id="every-step", marks=pytest.mark.ondemand),
    ],
)
async def test_sigkill_at_each_step_of_a_batch_leaves_a_chain_that_verifies(
    steps: list[tuple[Callable[[S3Request], bool], Stage]],
    tmp_path: Path,
    make_bucket: MakeBucket,
    s3_settings: S3Settings,
    seaweed: SeaweedServer,
) -> None:
    bucket = await make_bucket(object_lock=True)
    direct = s3_settings(bucket, object_lock_mode="GOVERNANCE", retention_days=1)
    trap = Trap()
    proxy = FaultProxy(seaweed.endpoint_url, hold=trap.hold)
    sim = Simulator(SimConfig(seed=31, calls=60, min_size=20_000, max_size=90_000))
    kills: list[str] = []
    async with proxy.serve() as endpoint, sim.serve() as base:
        env = archiver_env(
            tmp_path,
            base=base,
            sim=sim,
            storage=s3_storage_env(direct, seaweed, endpoint),
            tuning={
                "ARCHIVER_SOURCE__RATE_LIMIT": "0",
                "ARCHIVER_CONCURRENCY": "4",
                "ARCHIVER_MANIFEST_INTERVAL": "0.2",
                "ARCHIVER_MANIFEST_BATCH": "3",
                "ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE",
                "ARCHIVER_STORAGE__RETENTION_DAYS": "1",
            },
        )
        start = sim.config.start
        for n, (when, stage) in enumerate(steps):
            # A share of the calls per step (the simulator spreads them over its span).
            since = start + n * sim.config.span / len(steps)
            until = start + (n + 1) * sim.config.span / len(steps)
            span = ("--since", since.isoformat(), "--until", until.isoformat())
            trap.arm(when, stage)
            proc = await start_cli("backfill", *span, env=env, cwd=tmp_path)
            ended = asyncio.create_task(proc.wait())
            hit = asyncio.create_task(trap.hit.wait())
            done, _ = await asyncio.wait({ended, hit}, return_when="FIRST_COMPLETED")
            hit.cancel()
            if ended not in done:
                os.killpg(proc.pid, signal.SIGKILL)
                kills.append(f"{when.__name__} {stage}")
            await ended
            trap.when = None
            trap.release.set()
            rerun = await run_cli("backfill", *span, env=env, cwd=tmp_path)
            assert rerun.code == 0, rerun.out + rerun.err
            verified = await run_cli("verify", env=env, cwd=tmp_path)
            assert verified.code == 0, f"after a kill at {when.__name__} {stage}:\n{verified.out}"
            assert "all intact" in verified.out
    assert len(kills) == len(steps), f"some steps were never reached: {kills}"
    await assert_exactly_once(sim, direct)
    async with admin_client(seaweed) as client:
        listed = await client.list_object_versions(
            Bucket=bucket, Prefix=direct.url.split("/", 3)[3]
        )
    versions = listed.get("Versions", [])
    # A run's liveness marker (_archiver/running/, see archiver.pipeline.storage_binding) is
    # deleted when the run ends or renews it, by design; it must still never be
    # written twice. Anything else, once written, stays the latest version.
    markers = [v["Key"] for v in versions if "/_archiver/running/" in v["Key"]]
    rewritten = {
        v["Key"]
        for v in versions
        if not v["IsLatest"]
        and not v["Key"].endswith("/head.json")
        and "/_archiver/running/" not in v["Key"]
    }
    rewritten |= {key for key in markers if markers.count(key) > 1}
    assert rewritten == set(), f"objects written twice: {sorted(rewritten)}"
