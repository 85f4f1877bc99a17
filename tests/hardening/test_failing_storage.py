"""A failing storage: a fault-injecting proxy between the archiver and SeaweedFS.

503 SlowDown, 500 InternalError, connections dropped mid-upload, answers lost
after the storage did the work, uploads cut off at the storage's end: every
write is retried, every object ends up right, and no multipart upload and no
half object is ever left behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from archiver.errors import StorageError
from archiver.settings import StorageSettings
from archiver.simulator import Simulator
from archiver.storage import PutOutcome, open_store
from tests.conftest import MakeBucket, S3Settings
from tests.hardening.s3proxy import FaultProxy, ProxyFaults, S3Request
from tests.integration.pipeline_helpers import backfill, make_settings
from tests.seaweed import SeaweedServer, admin_client

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
            assert await upload.complete(sha(WAV), len(WAV)) is PutOutcome.CREATED
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
            assert outcome in (PutOutcome.CREATED, PutOutcome.ALREADY_PRESENT)
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
