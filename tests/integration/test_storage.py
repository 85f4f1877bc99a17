"""The ObjectStore behaviours, run against both stores: a local directory and SeaweedFS S3."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from archiver.errors import RetriableError, StorageError
from archiver.settings import StorageSettings
from archiver.storage import ObjectExistsError, ObjectStore, PutOutcome, open_store
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer, admin_client
from tests.support.web import serve

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4
MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def read_all(store: ObjectStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])


@dataclass
class Env:
    """A store under test, and how to look behind its back."""

    kind: str
    store: ObjectStore
    root: Path | None = None  # local
    bucket: str | None = None  # s3
    server: SeaweedServer | None = None

    async def leftovers(self) -> list[str]:
        """Temporary files (local) or multipart uploads (S3) still there."""
        if self.root is not None:
            return sorted(str(p) for p in self.root.rglob("*.partial"))
        assert self.server is not None
        async with admin_client(self.server) as client:
            resp = await client.list_multipart_uploads(Bucket=self.bucket)
        return sorted(u["Key"] for u in resp.get("Uploads", []))


@pytest.fixture
async def local_env(tmp_path: Path) -> AsyncIterator[Env]:
    root = tmp_path / "archive"
    async with open_store(StorageSettings(url=str(root))) as store:
        yield Env("local", store, root=root)


@pytest.fixture
async def s3_env_store(
    make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> AsyncIterator[Env]:
    bucket = await make_bucket()
    async with open_store(s3_settings(bucket)) as store:
        yield Env("s3", store, bucket=bucket, server=seaweed)


@pytest.fixture(params=["local", "s3"])
def env(request: pytest.FixtureRequest) -> Env:
    fixture = {"local": "local_env", "s3": "s3_env_store"}[request.param]
    result: Env = request.getfixturevalue(fixture)
    return result


async def test_put_then_head_and_read(env: Env) -> None:
    key = "recordings/2021/02/17/call-1.wav"
    outcome = await env.store.put_bytes(
        key, WAV, sha256=sha(WAV), content_type="audio/wav", metadata={"cdr-id": "42"}
    )
    assert outcome.outcome is PutOutcome.CREATED
    obj = await env.store.head(key)
    assert obj is not None
    assert (obj.key, obj.size, obj.content_type) == (key, len(WAV), "audio/wav")
    if env.kind == "s3":
        assert obj.full_key == "prefix/" + key
        assert obj.sha256 == sha(WAV)  # from the stored checksum / metadata
        assert env.store.description == f"s3://{env.bucket}/prefix"
    else:
        assert obj.full_key == key
        assert env.store.description == str(env.root)
    assert await read_all(env.store, key) == WAV
    assert await env.store.head("recordings/absent.wav") is None
    with pytest.raises(KeyError):
        await read_all(env.store, "recordings/absent.wav")


async def test_conditional_write(env: Env) -> None:
    key = "recordings/same.wav"
    await env.store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
    again = await env.store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
    assert again.outcome is PutOutcome.ALREADY_PRESENT
    other = WAV + b"different"
    with pytest.raises(ObjectExistsError) as info:
        await env.store.put_bytes(key, other, sha256=sha(other), content_type="audio/wav")
    assert info.value.existing_sha256 == sha(WAV)
    assert await read_all(env.store, key) == WAV


async def test_wrong_sha256_is_refused_and_leaves_nothing(env: Env) -> None:
    key = "recordings/corrupt.wav"
    with pytest.raises(RetriableError, match="checksum|SHA-256"):
        await env.store.put_bytes(key, WAV, sha256=sha(b"other"), content_type="audio/wav")
    assert await env.store.head(key) is None
    assert [o async for o in env.store.list("recordings/")] == []
    assert await env.leftovers() == []


async def test_multipart_upload(env: Env) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1024)]
    data = b"".join(parts)
    key = "recordings/big.wav"
    upload = await env.store.start_upload(key, content_type="audio/wav")
    for part in parts:
        await upload.write_part(part)
    assert await env.store.head(key) is None  # invisible before complete
    assert [o async for o in env.store.list("recordings/")] == []
    assert (await upload.complete(sha(data), len(data))).outcome is PutOutcome.CREATED
    obj = await env.store.head(key)
    assert obj is not None
    assert obj.size == len(data)
    assert obj.sha256 in (None, sha(data))  # S3 keeps only a checksum of part checksums
    assert sha(await read_all(env.store, key)) == sha(data)
    assert await env.leftovers() == []
    # Without a stored SHA-256 to compare, the existing object is read and hashed.
    again = await env.store.put_bytes(key, data, sha256=sha(data), content_type="audio/wav")
    assert again.outcome is PutOutcome.ALREADY_PRESENT


async def test_multipart_onto_existing_key(env: Env) -> None:
    key = "recordings/taken.wav"
    await env.store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
    same = await env.store.start_upload(key, content_type="audio/wav")
    await same.write_part(WAV)
    assert (await same.complete(sha(WAV), len(WAV))).outcome is PutOutcome.ALREADY_PRESENT
    other = await env.store.start_upload(key, content_type="audio/wav")
    await other.write_part(b"other bytes")
    with pytest.raises(ObjectExistsError):
        await other.complete(sha(b"other bytes"), len(b"other bytes"))
    assert await read_all(env.store, key) == WAV
    assert await env.leftovers() == []


async def test_complete_with_wrong_digest_is_refused(env: Env) -> None:
    key = "recordings/mismatch.wav"
    upload = await env.store.start_upload(key, content_type="audio/wav")
    await upload.write_part(WAV)
    with pytest.raises(RetriableError):
        await upload.complete(sha(b"something else"), len(WAV))
    assert await env.store.head(key) is None
    assert await env.leftovers() == []


async def test_abort_leaves_nothing(env: Env) -> None:
    upload = await env.store.start_upload("recordings/aborted.wav", content_type="audio/wav")
    await upload.write_part(os.urandom(5 * MIB))
    assert len(await env.leftovers()) == 1
    await upload.abort()
    await upload.abort()  # twice is fine
    assert await env.leftovers() == []
    assert await env.store.head("recordings/aborted.wav") is None


async def test_cleanup_incomplete(env: Env) -> None:
    upload = await env.store.start_upload("recordings/left-open.wav", content_type="audio/wav")
    await upload.write_part(WAV)
    assert await env.store.cleanup_incomplete() == 1
    assert await env.leftovers() == []
    assert await env.store.cleanup_incomplete() == 0
    await upload.abort()  # what the crashed process never did; harmless now


async def test_cleanup_spares_an_upload_younger_than_the_bound(env: Env) -> None:
    """Another process's upload in progress is not abandoned: it completes."""
    from datetime import UTC, datetime, timedelta

    upload = await env.store.start_upload("recordings/at-work.wav", content_type="audio/wav")
    await upload.write_part(WAV)
    now = datetime.now(UTC)
    assert await env.store.cleanup_incomplete(now - timedelta(hours=1)) == 0
    assert len(await env.leftovers()) == 1
    assert (await upload.complete(sha(WAV), len(WAV))).outcome is PutOutcome.CREATED
    assert (await env.store.head("recordings/at-work.wav")) is not None
    # Once older than the bound, an upload is abandoned and goes.
    left = await env.store.start_upload("recordings/left.wav", content_type="audio/wav")
    await left.write_part(WAV)
    assert await env.store.cleanup_incomplete(now + timedelta(hours=1)) == 1
    assert await env.leftovers() == []
    await left.abort()


async def test_list_under_prefix(env: Env) -> None:
    keys = ["m/a.txt", "m/a/2.wav", "m/a/1.wav", "m/b.wav", "m-other/x.wav", "n/c.wav"]
    for key in keys:
        await env.store.put_bytes(key, key.encode(), sha256=sha(key.encode()), content_type="x/y")

    def in_order(listed: list[str]) -> list[str]:
        # S3 lists in UTF-8 byte order ("m/a.txt" < "m/a/1.wav", as "." < "/"), and so
        # does the local store; SeaweedFS lists a folder before such siblings.
        return sorted(listed) if env.kind == "s3" else listed

    listed = [o async for o in env.store.list("m/")]
    assert in_order([o.key for o in listed]) == ["m/a.txt", "m/a/1.wav", "m/a/2.wav", "m/b.wav"]
    assert [o.size for o in listed] == [len(o.key) for o in listed]
    expected_full = [("prefix/" if env.kind == "s3" else "") + o.key for o in listed]
    assert [o.full_key for o in listed] == expected_full
    assert [o.key async for o in env.store.list("m/a/")] == ["m/a/1.wav", "m/a/2.wav"]
    # A prefix that ends inside a name, as S3 means it.
    m_a = [o.key async for o in env.store.list("m/a")]
    assert in_order(m_a) == ["m/a.txt", "m/a/1.wav", "m/a/2.wav"]
    assert in_order([o.key async for o in env.store.list("")]) == sorted(keys)
    assert [o.key async for o in env.store.list("zzz/")] == []


async def test_delete(env: Env) -> None:
    key = "_archiver/check/marker"
    await env.store.put_bytes(key, b"x", sha256=sha(b"x"), content_type="text/plain")
    await env.store.delete(key)
    assert await env.store.head(key) is None
    await env.store.delete(key)  # absent: no error


async def test_url_for(env: Env) -> None:
    key = "recordings/url.wav"
    await env.store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
    url = await env.store.url_for(key, expires=300)
    if env.kind == "local":
        assert Path(url).is_absolute()
        assert Path(url).read_bytes() == WAV
        return
    assert "X-Amz-Signature=" in url  # SigV4
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert await resp.read() == WAV


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", ""])
async def test_keys_escaping_the_root_are_refused(env: Env, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        await env.store.put_bytes(key, b"x", sha256=sha(b"x"), content_type="text/plain")


async def test_local_refuses_temporary_names_and_skips_crash_leftovers(local_env: Env) -> None:
    store, root = local_env.store, local_env.root
    assert root is not None
    with pytest.raises(ValueError, match="temporary"):
        await store.put_bytes(".a.wav.0123.partial", b"x", sha256=sha(b"x"), content_type="x/y")
    await store.put_bytes("r/a.wav", WAV, sha256=sha(WAV), content_type="audio/wav")
    (root / "r" / ".b.wav.deadbeef.partial").write_bytes(b"half a recording")
    assert [o.key async for o in store.list("r/")] == ["r/a.wav"]
    assert await store.cleanup_incomplete() == 1
    assert sorted(p.name for p in (root / "r").iterdir()) == ["a.wav"]


async def test_s3_put_into_object_lock_bucket(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket(object_lock=True)
    async with open_store(s3_settings(bucket)) as store:
        key = "recordings/locked.wav"
        written = await store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
        assert written.outcome is PutOutcome.CREATED
        assert await read_all(store, key) == WAV


async def test_s3_missing_bucket(s3_settings: S3Settings) -> None:
    async with open_store(s3_settings("no-such-bucket-here")) as store:
        with pytest.raises(StorageError, match="'no-such-bucket-here' does not exist"):
            await store.put_bytes("k", b"x", sha256=sha(b"x"), content_type="text/plain")
        # HEAD answers a bare 404 for a missing bucket too: it must not read as "no object".
        with pytest.raises(StorageError, match="'no-such-bucket-here' does not exist"):
            await store.head("k")
        with pytest.raises(StorageError, match="does not exist"):
            [o async for o in store.list("")]


async def test_s3_wrong_secret_key(
    make_bucket: MakeBucket, s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = await make_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
    async with open_store(s3_settings(bucket)) as store:
        with pytest.raises(StorageError) as info:
            await store.put_bytes("k", b"x", sha256=sha(b"x"), content_type="text/plain")
    message = str(info.value)
    assert "secret access key does not match" in message
    assert bucket in message
    assert "not-the-secret-key" not in message
    assert "\n" not in message


async def test_s3_unknown_access_key(
    make_bucket: MakeBucket, s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = await make_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOBODY")
    async with open_store(s3_settings(bucket)) as store:
        with pytest.raises(StorageError, match=f"access key ID is unknown.*{bucket}"):
            await store.put_bytes("k", b"x", sha256=sha(b"x"), content_type="text/plain")


async def test_s3_no_credentials(s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = s3_settings("any-bucket")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with open_store(settings) as store:
        with pytest.raises(StorageError, match="no AWS credentials"):
            await store.put_bytes("k", b"x", sha256=sha(b"x"), content_type="text/plain")


@pytest.fixture
async def checksum_refusing_endpoint(seaweed: SeaweedServer) -> AsyncIterator[str]:
    """A proxy to SeaweedFS that refuses x-amz-checksum-* headers, as some S3 servers do."""
    refusal = (
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>InvalidArgument</Code>"
        "<Message>x-amz-checksum-sha256 is not supported</Message></Error>"
    )
    hop_by_hop = {"transfer-encoding", "connection", "keep-alive", "content-length"}

    async def forward(request: web.Request) -> web.StreamResponse:
        names = {name.lower() for name in request.headers}
        if any(
            n.startswith("x-amz-checksum-") or n == "x-amz-sdk-checksum-algorithm" for n in names
        ):
            return web.Response(status=400, text=refusal, content_type="application/xml")
        url = URL(seaweed.endpoint_url + request.raw_path, encoded=True)
        # The Host header is forwarded as sent: it is part of the SigV4 signature.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop_by_hop}
        async with session.request(
            request.method,
            url,
            headers=headers,
            data=io.BytesIO(await request.read()),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in hop_by_hop}
            if request.method == "HEAD":
                out["Content-Length"] = upstream.headers.get("Content-Length", "0")
            return web.Response(status=upstream.status, body=body or None, headers=out)

    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        serve({"/{tail:.*}": forward}, client_max_size=64 * MIB) as server,
    ):
        yield server.url


async def test_s3_falls_back_to_md5_when_checksums_are_refused(
    checksum_refusing_endpoint: str,
    make_bucket: MakeBucket,
    s3_settings: S3Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = await make_bucket()
    settings = s3_settings(bucket, endpoint_url=checksum_refusing_endpoint)
    async with open_store(settings) as store:
        key = "recordings/md5.wav"
        written = await store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
        assert written.outcome is PutOutcome.CREATED
        other = WAV + b"!"
        with pytest.raises(ObjectExistsError):  # still a conditional write
            await store.put_bytes(key, other, sha256=sha(other), content_type="audio/wav")
        with pytest.raises(RetriableError, match="SHA-256 mismatch"):  # checked on our side
            await store.put_bytes("recordings/x.wav", WAV, sha256=sha(b"x"), content_type="x/y")
        obj = await store.head(key)
        assert obj is not None
        # Client-set metadata (x-amz-meta-sha256) is never evidence: no SHA-256,
        # only the server's ETag (the MD5 it checked).
        assert obj.sha256 is None
        assert obj.proof.etag == hashlib.md5(WAV, usedforsecurity=False).hexdigest()

        parts = [os.urandom(5 * MIB), b"tail"]
        upload = await store.start_upload("recordings/md5-big.wav", content_type="audio/wav")
        for part in parts:
            await upload.write_part(part)
        data = b"".join(parts)
        assert (await upload.complete(sha(data), len(data))).outcome is PutOutcome.CREATED
        assert sha(await read_all(store, "recordings/md5-big.wav")) == sha(data)
    warnings = [r for r in caplog.records if r.name == "archiver.storage"]
    assert len(warnings) == 1
    assert "Content-MD5" in warnings[0].getMessage()


async def test_s3_retention_reads_work_where_checksums_are_refused(
    checksum_refusing_endpoint: str, make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    """get, verify and hold read a version's protection with HeadObject: once the store
    knows the endpoint refuses checksum headers, that read sends none either."""
    bucket = await make_bucket()
    async with open_store(s3_settings(bucket, endpoint_url=checksum_refusing_endpoint)) as store:
        key = "recordings/held.wav"
        await store.put_bytes(key, WAV, sha256=sha(WAV), content_type="audio/wav")
        assert await store.protection(key) is not None
        assert await store.protection("recordings/none.wav") is None


async def test_local_start_upload_cancelled_during_open_leaks_nothing(tmp_path):
    """A cancellation at any point of start_upload leaves no open file and no temp file."""
    import asyncio
    import gc

    from archiver.settings import StorageSettings
    from archiver.storage import open_store

    async with open_store(StorageSettings(url=str(tmp_path / "root"))) as store:
        for spins in range(6):
            task = asyncio.create_task(
                store.start_upload("recordings/a.wav", content_type="audio/wav")
            )
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            try:
                upload = await task
            except asyncio.CancelledError:
                continue
            await upload.abort()
        gc.collect()  # a leaked file object would raise ResourceWarning (an error here)
    assert [p for p in (tmp_path / "root").rglob("*") if p.is_file()] == []


async def test_local_put_bytes_cancelled_at_any_point_leaves_no_temporary_file(
    tmp_path, monkeypatch
):
    """The write runs in a thread a cancellation cannot stop: the clean-up must come
    after it, or the thread creates the temporary file after it was 'removed'."""
    import asyncio
    import hashlib
    import time
    from concurrent.futures import ThreadPoolExecutor

    from archiver.settings import StorageSettings
    from archiver.storage import local, open_store

    slow_start = local.write_new_file

    def late_write(path, data, mode):  # a busy machine: the thread gets to run late
        time.sleep(0.05)
        slow_start(path, data, mode)

    monkeypatch.setattr(local, "write_new_file", late_write)

    data = b"x" * 200_000
    digest = hashlib.sha256(data).hexdigest()
    # The store's threads run in an executor of the test's own, so the test can wait
    # for every write a cancelled task started (shutdown waits for each one).
    threads = ThreadPoolExecutor(max_workers=4)
    asyncio.get_running_loop().set_default_executor(threads)
    async with open_store(StorageSettings(url=str(tmp_path / "root"))) as store:
        for i in range(16):
            task = asyncio.create_task(
                store.put_bytes(f"k/{i}.bin", data, sha256=digest, content_type="x")
            )
            for _ in range(i % 8):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    threads.shutdown(wait=True)  # every thread the writes started has finished now
    leftovers = [p.name for p in (tmp_path / "root").rglob("*") if ".partial" in p.name]
    assert leftovers == []
