"""Crashes: ``archiver backfill`` SIGKILLed at chosen and at random moments.

The S3 fault proxy holds one chosen request (a manifest batch being written, a
recording's PUT, a part of a multipart upload, its completion) either before
or after the storage carried it out, and the process group is SIGKILLed right
then; other runs are killed at random moments. After a final run: every
recording exactly once in the storage and in the manifest, nothing half
written, no multipart upload left.

(``archiver run``, the daemon: see test_run_crashes.py.)
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from tests.hardening.watcher import Watcher, expected_objects, s3_lister
from tests.support.cli import (
    archiver_env,
    local_storage_env,
    run_cli,
    s3_storage_env,
    start_cli,
)
from tests.support.faultproxy import FaultProxy, S3Request
from tests.support.pipeline import assert_exactly_once
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer, admin_client

SINCE = "2021-02-17 08:00"
UNTIL = "2021-02-17 14:00"
Stage = Literal["before", "after"]


def manifest_put(r: S3Request) -> bool:
    return r.operation == "PutObject" and "/manifests/" in r.path


def recording_put(r: S3Request) -> bool:
    return r.operation == "PutObject" and "/recordings/" in r.path


def part(r: S3Request) -> bool:
    return r.operation == "UploadPart"


def complete(r: S3Request) -> bool:
    return r.operation == "CompleteMultipartUpload"


@dataclass
class Trap:
    """Holds the first request matching ``when`` at ``stage`` until released."""

    when: Callable[[S3Request], bool] | None = None
    stage: Stage = "before"

    def __post_init__(self) -> None:
        self.hit = asyncio.Event()
        self.release = asyncio.Event()

    def arm(self, when: Callable[[S3Request], bool], stage: Stage) -> None:
        self.when, self.stage = when, stage
        self.hit.clear()
        self.release.clear()

    async def hold(self, request: S3Request, stage: Stage) -> None:
        if self.when is not None and stage == self.stage and self.when(request):
            self.when = None
            self.hit.set()
            await self.release.wait()


# (what to hold, when) or None for a kill at a random moment.
SCHEDULE: list[tuple[Callable[[S3Request], bool], Stage] | None] = [
    (manifest_put, "after"),  # the batch is in the storage, the state does not know
    None,
    (part, "before"),  # a multipart upload in progress
    (manifest_put, "before"),  # the batch never reached the storage
    (recording_put, "after"),  # the recording is stored, the state does not know
    None,
    (complete, "after"),  # the multipart object exists, the state does not know
    (manifest_put, "after"),
]


@pytest.mark.slow
async def test_sigkill_while_writing_manifests_and_uploads_then_exactly_once(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    bucket = await make_bucket()
    direct = s3_settings(bucket)
    trap = Trap()
    proxy = FaultProxy(seaweed.endpoint_url, hold=trap.hold)
    # Enough calls that every step of SCHEDULE still finds its kind of write to hold
    # (with the lean upload, a run killed at a random moment may have archived many).
    sim = Simulator(
        SimConfig(
            seed=23,
            calls=120,
            min_size=20_000,
            max_size=200_000,
            faults=Faults(slow=0.2, slow_seconds=0.1),
        )
    )
    rng = random.Random(11)
    kills: list[str] = []
    stop = asyncio.Event()
    async with (
        proxy.serve() as endpoint,
        sim.serve() as base,
        s3_lister(seaweed, bucket, direct.bucket_and_prefix[1]) as lister,
    ):
        watcher = Watcher(lister, expected_objects(sim.calls, sim.tz))
        watching = asyncio.create_task(watcher.watch(stop))
        env = archiver_env(
            tmp_path,
            base=base,
            sim=sim,
            storage=s3_storage_env(direct, seaweed, endpoint),
            tuning={
                "ARCHIVER_SOURCE__RATE_LIMIT": "0",
                "ARCHIVER_CONCURRENCY": "4",
                "ARCHIVER_WINDOW": "1800",
                "ARCHIVER_MANIFEST_INTERVAL": "0.2",
                "ARCHIVER_MANIFEST_BATCH": "4",
                "ARCHIVER_STORAGE__BUFFER_BOUND": "100000",
            },
        )
        try:
            for step in SCHEDULE:
                if step is not None:
                    trap.arm(*step)
                proc = await start_cli(
                    "backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
                )
                ended = asyncio.create_task(proc.wait())
                if step is None:
                    done, _ = await asyncio.wait({ended}, timeout=rng.uniform(0.4, 1.5))
                    what = "random moment"
                else:
                    hit = asyncio.create_task(trap.hit.wait())
                    done, _ = await asyncio.wait({ended, hit}, return_when="FIRST_COMPLETED")
                    hit.cancel()
                    what = f"{step[0].__name__} {step[1]}"
                if ended not in done:
                    os.killpg(proc.pid, signal.SIGKILL)
                    kills.append(what)
                await ended
                trap.when = None
                trap.release.set()
            final = await run_cli(
                "backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
            )
            assert final.code == 0, final.out + final.err
        finally:
            stop.set()
            await watching
    assert len(kills) >= 6, f"too few runs were killed: {kills}"
    assert "manifest_put after" in kills
    assert "manifest_put before" in kills
    watcher.assert_clean()
    await assert_exactly_once(sim, direct)
    async with admin_client(seaweed) as client:
        uploads = await client.list_multipart_uploads(Bucket=bucket)
    assert uploads.get("Uploads", []) == [], "an orphan multipart upload"
    print(f"\ncrashes: {len(kills)} SIGKILLs ({', '.join(kills)}), lost 0, doubled 0")


@pytest.mark.slow
async def test_local_sigkill_as_soon_as_a_manifest_batch_appears(tmp_path: Path) -> None:
    """On a local directory the kill comes the moment a new manifest file shows up:
    published, but (most likely) not yet marked written in the state."""
    root = tmp_path / "archive"
    sim = Simulator(
        SimConfig(seed=29, calls=40, max_size=200_000, faults=Faults(slow=0.2, slow_seconds=0.1))
    )
    kills = 0
    async with sim.serve() as base:
        env = archiver_env(
            tmp_path,
            base=base,
            sim=sim,
            storage=local_storage_env(root),
            tuning={
                "ARCHIVER_SOURCE__RATE_LIMIT": "0",
                "ARCHIVER_CONCURRENCY": "4",
                "ARCHIVER_MANIFEST_INTERVAL": "0.2",
                "ARCHIVER_MANIFEST_BATCH": "3",
            },
        )
        for _ in range(5):
            before = set((root / "manifests").rglob("*.jsonl"))
            proc = await start_cli(
                "backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
            )
            while proc.returncode is None:
                if set((root / "manifests").rglob("*.jsonl")) - before:
                    os.killpg(proc.pid, signal.SIGKILL)
                    kills += 1
                    break
                await asyncio.sleep(0.002)
            await proc.wait()
        final = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        assert final.code == 0, final.out + final.err
    assert kills >= 3, f"only {kills} run(s) could be killed"
    await assert_exactly_once(sim, StorageSettings(url=str(root)))
    assert list(root.rglob("*.partial")) == []
