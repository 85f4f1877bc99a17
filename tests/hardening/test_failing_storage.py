"""A failing storage: a fault-injecting proxy between the archiver and SeaweedFS.

503 SlowDown, 500 InternalError, connections dropped mid-upload, answers lost
after the storage did the work, uploads cut off at the storage's end: every
write is retried, every object ends up right, and no multipart upload and no
half object is ever left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from archiver.errors import StorageError
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import PutOutcome, open_store
from tests.hardening.watcher import Watcher, expected_objects, s3_lister
from tests.support.faultproxy import FaultProxy, ProxyFaults, S3Request
from tests.support.pipeline import assert_exactly_once, backfill, make_settings
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer, admin_client

MiB = 1024 * 1024
MAX_RUNS = 6
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 40


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def uploads_left(server: SeaweedServer, bucket: str) -> list[str]:
    async with admin_client(server) as client:
        resp = await client.list_multipart_uploads(Bucket=bucket)
    return sorted(u["Key"] for u in resp.get("Uploads", []))


async def run_until_done(
    sim: Simulator, base: str, storage: StorageSettings, state: Path, **overrides: object
) -> list[str]:
    """Backfill again until a run ends normally; returns the storage outages that ended runs.

    A storage failing longer than the S3 client's own retries stops a run
    (StorageError, exit 1 on the command line); the next run picks up from there.
    """
    outages: list[str] = []
    settings = make_settings(sim, base, storage, str(state), **overrides)
    for _ in range(MAX_RUNS):
        try:
            _, counts = await backfill(settings, sim)
        except StorageError as exc:
            outages.append(str(exc))
            continue
        assert counts["failed"] == 0, counts
        return outages
    raise AssertionError(f"{MAX_RUNS} runs ended by storage outages: {outages}")


@pytest.mark.slow
async def test_a_failing_storage_loses_nothing_and_leaves_nothing(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    bucket = await make_bucket()
    faults = ProxyFaults(
        slow_down=0.05, internal=0.03, drop_request=0.02, drop_response=0.03, cut_upstream=0.02
    )
    proxy = FaultProxy(seaweed.endpoint_url, faults, seed=3)
    sim = Simulator(SimConfig(seed=41, calls=120, min_size=20_000, max_size=200_000))
    direct = s3_settings(bucket)
    stop = asyncio.Event()
    async with (
        proxy.serve() as endpoint,
        sim.serve() as base,
        s3_lister(seaweed, bucket, direct.bucket_and_prefix[1]) as lister,
    ):
        watcher = Watcher(lister, expected_objects(sim.calls, sim.tz))
        watching = asyncio.create_task(watcher.watch(stop))
        try:
            # Half the recordings fit the buffer (one PUT); the others are multipart.
            storage = s3_settings(bucket, endpoint_url=endpoint, buffer_bound=100_000)
            outages = await run_until_done(
                sim, base, storage, tmp_path / "s.sqlite3", manifest_batch=7
            )
        finally:
            stop.set()
            await watching
    watcher.assert_clean()
    await assert_exactly_once(sim, direct)
    assert await uploads_left(seaweed, bucket) == []
    injected = {k: v for k, v in proxy.stats.items() if k.startswith("fault:")}
    for name in ("slow_down", "internal", "drop_request", "drop_response", "cut_upstream"):
        assert injected.get(f"fault:{name}", 0) > 0, f"{name} never injected: {injected}"
    for op in ("PutObject", "UploadPart", "CompleteMultipartUpload", "CreateMultipartUpload"):
        assert any(k.endswith(f":{op}") for k in injected), f"no fault ever hit {op}"
    print(
        f"\nfailing storage: {proxy.stats['requests']} requests, {proxy.injected} faults "
        f"injected {injected}, runs ended by an outage: {len(outages)}, "
        f"watcher {watcher.scans} scans / {watcher.objects_checked} objects, lost 0"
    )


async def test_large_multipart_recordings_survive_part_failures(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    bucket = await make_bucket()

    def uploads(r: S3Request) -> bool:
        return r.operation in ("UploadPart", "CompleteMultipartUpload")

    faults = ProxyFaults(
        slow_down=0.1, drop_request=0.1, drop_response=0.1, cut_upstream=0.1, only=uploads
    )
    proxy = FaultProxy(seaweed.endpoint_url, faults, seed=5)
    sim = Simulator(SimConfig(seed=2, calls=3, recording_fraction=1.0, fixed_size=11 * MiB + 7))
    async with proxy.serve() as endpoint, sim.serve() as base:
        storage = s3_settings(
            bucket, endpoint_url=endpoint, buffer_bound=64 * 1024, part_size=5 * MiB
        )
        await run_until_done(sim, base, storage, tmp_path / "s.sqlite3")
    contents = await assert_exactly_once(sim, s3_settings(bucket))
    assert len(contents.recordings) == 3
    assert await uploads_left(seaweed, bucket) == []
    assert proxy.stats["op:UploadPart"] >= 9  # 5 + 5 + 1 MiB, three times
    assert proxy.injected > 0


def _first(operation: str) -> ProxyFaults:
    """Lose the answer to the first request of ``operation`` only."""
    seen = {"n": 0}

    def only(r: S3Request) -> bool:
        if r.operation != operation:
            return False
        seen["n"] += 1
        return seen["n"] == 1

    return ProxyFaults(drop_response=1.0, only=only)


async def test_a_lost_create_multipart_answer_leaves_no_orphan_upload(
    make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    """The storage created the upload, the answer was lost, the client asked again:
    the first upload, whose id the archiver never learnt, must not be left behind."""
    bucket = await make_bucket()
    proxy = FaultProxy(seaweed.endpoint_url, _first("CreateMultipartUpload"))
    async with proxy.serve() as endpoint:
        async with open_store(s3_settings(bucket, endpoint_url=endpoint)) as store:
            upload = await store.start_upload("recordings/a.wav", content_type="audio/wav")
            await upload.write_part(WAV)
            assert (await upload.complete(sha(WAV), len(WAV))).outcome is PutOutcome.CREATED
    assert proxy.stats["op:CreateMultipartUpload"] == 2
    assert await uploads_left(seaweed, bucket) == []


async def test_a_lost_complete_answer_then_no_such_upload_is_success(
    make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    """The upload was completed but the answer lost; the retry hears NoSuchUpload
    (MinIO, or AWS once the upload is gone). The object is there, right: success."""
    bucket = await make_bucket()
    proxy = FaultProxy(seaweed.endpoint_url, _first("CompleteMultipartUpload"))
    proxy.forget_completed = True
    async with proxy.serve() as endpoint:
        async with open_store(s3_settings(bucket, endpoint_url=endpoint)) as store:
            upload = await store.start_upload("recordings/a.wav", content_type="audio/wav")
            await upload.write_part(WAV)
            outcome = await upload.complete(sha(WAV), len(WAV))
            assert outcome.outcome in (PutOutcome.CREATED, PutOutcome.ALREADY_PRESENT)
            body = b"".join([c async for c in store.read("recordings/a.wav")])
    assert proxy.stats["answered:NoSuchUpload"] == 1
    assert body == WAV
    assert await uploads_left(seaweed, bucket) == []


async def test_an_upload_that_vanished_is_retried_not_fatal(
    make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    """An upload aborted behind our back (a lifecycle rule, another cleanup) is a
    transient failure of this one recording, not a storage outage ending the run."""
    from archiver.errors import RetriableError

    bucket = await make_bucket()
    async with open_store(s3_settings(bucket)) as store:
        upload = await store.start_upload("recordings/a.wav", content_type="audio/wav")
        await upload.write_part(WAV)
        async with admin_client(seaweed) as client:
            await client.abort_multipart_upload(
                Bucket=bucket,
                Key=store.full_key("recordings/a.wav"),
                UploadId=upload.upload_id,  # type: ignore[attr-defined]
            )
        with pytest.raises(RetriableError):
            await upload.write_part(WAV)
    assert await uploads_left(seaweed, bucket) == []
