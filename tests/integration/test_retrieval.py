"""Retrieval against SeaweedFS with an Object Lock bucket, from the storage alone.

One backfill of the simulator per test (a few calls, some above the buffer
bound so they go up as multipart uploads), then the retrieval functions with
no state database at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from archiver.commands.finding import find_call
from archiver.errors import ConfigError
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import list_manifests
from archiver.retrieval.errors import AmbiguousIdError, IntegrityError
from archiver.retrieval.fetch import archived_version, fetch_to_file, presigned_url
from archiver.retrieval.index import lookup, resolve, write_pointers
from archiver.retrieval.verify import ProblemKind, verify_archive
from archiver.settings import Settings, StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import LockingStore, open_store
from tests.support.pipeline import backfill, make_settings, read_archive
from tests.support.seaweed import admin_client

HCM = SimConfig().start.tzinfo
BUFFER_BOUND = 64 * 1024  # recordings above go up as multipart uploads


async def _archive(sim: Simulator, storage: StorageSettings, tmp_path) -> None:
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "state.sqlite3"))
        _, counts = await backfill(settings, sim)
    assert counts["failed"] == 0
    (tmp_path / "state.sqlite3").unlink()  # from here on: the storage alone


@pytest.fixture
def index_path(tmp_path_factory):
    """The local index of the manifests get uses (out of tmp_path, which tests list)."""
    return tmp_path_factory.mktemp("index") / "index.sqlite3"


@pytest.fixture
async def locked(make_bucket, s3_settings, tmp_path):
    """(simulator, storage settings, bucket): a backfill into a GOVERNANCE-locked bucket."""
    bucket = await make_bucket(object_lock=True)
    storage = s3_settings(
        bucket, object_lock_mode="GOVERNANCE", retention_days=1, buffer_bound=BUFFER_BOUND
    )
    sim = Simulator(SimConfig(seed=5, calls=8, recording_fraction=1.0, max_size=150_000))
    await _archive(sim, storage, tmp_path)
    return sim, storage, bucket


async def test_retention_is_set_on_every_recording_and_manifest(locked, seaweed):
    sim, storage, bucket = locked
    archive = await read_archive(storage)
    assert len(archive.lines) == len(sim.calls)
    assert any(size > BUFFER_BOUND for size in archive.recordings.values()), "no multipart upload"
    locked_keys = [line["object_key"] for line in archive.lines]
    async with admin_client(seaweed) as client:
        listing = await client.list_objects_v2(Bucket=bucket, Prefix="prefix/")
        keys = [item["Key"] for item in listing["Contents"]]
        locked_keys += [k for k in keys if k.startswith("prefix/manifests/")]
        # get finds calls through the local index of the manifests: no pointer
        # object is written per recording.
        assert [k for k in keys if k.startswith("prefix/_archiver/ids/")] == []
        soon = datetime.now(UTC) + timedelta(days=1)
        for key in locked_keys:
            head = await client.head_object(Bucket=bucket, Key=key)
            assert head["ObjectLockMode"] == "GOVERNANCE", key
            until = head["ObjectLockRetainUntilDate"]
            assert soon - timedelta(minutes=5) < until <= soon, key


async def test_deleting_a_locked_version_is_refused_and_a_legal_hold_turns_on_and_off(
    locked, seaweed, tmp_path, index_path
):
    sim, storage, bucket = locked
    call = sim.calls[0]
    async with open_store(storage) as store:
        assert isinstance(store, LockingStore)
        found = await find_call(store, index_path, call.sip_call_id)
        key = store.relative_key(found.object_key)
        async with admin_client(seaweed) as client:
            head = await client.head_object(Bucket=bucket, Key=found.object_key)
            version = head["VersionId"]
            with pytest.raises(ClientError) as refused:
                await client.delete_object(Bucket=bucket, Key=found.object_key, VersionId=version)
            assert refused.value.response["Error"]["Code"] == "AccessDenied"

            await store.set_legal_hold(key, True)
            try:
                protection = await store.protection(key)
                assert protection is not None
                assert protection.legal_hold
                assert protection.mode == "GOVERNANCE"
                # A legal hold refuses even a delete that bypasses governance retention.
                with pytest.raises(ClientError):
                    await client.delete_object(
                        Bucket=bucket,
                        Key=found.object_key,
                        VersionId=version,
                        BypassGovernanceRetention=True,
                    )
            finally:
                await store.set_legal_hold(key, False)
            protection = await store.protection(key)
            assert protection is not None
            assert not protection.legal_hold
        # Still there, still intact.
        fetched = await fetch_to_file(store, found, tmp_path)
        assert fetched.sha256 == call.sha256()
        assert fetched.path.read_bytes() == call.content()


async def test_verify_proves_every_object_by_its_checksum_multipart_included(locked):
    sim, storage, _ = locked
    async with open_store(storage) as store:
        manifests = await list_manifests(store, None, None, HCM)
        report = await verify_archive(store, manifests, concurrency=4)
        assert report.ok, [p.line() for p in report.problems]
        multipart = sum(1 for c in sim.calls if c.size > BUFFER_BOUND)
        assert multipart > 0
        assert report.checked == len(sim.calls)
        # Multipart uploads too: their COMPOSITE SHA-256 was recorded at write time.
        assert report.by_checksum == len(sim.calls)
        assert (report.rehashed, report.bytes_read, report.legacy) == (0, 0, 0)
        assert report.links == len(manifests)
        assert "all intact" in report.summary()
        deep = await verify_archive(store, manifests, deep=True, concurrency=4)
        assert deep.ok
        assert deep.rehashed == len(sim.calls)
        assert deep.bytes_read == sum(c.size for c in sim.calls)


async def test_a_replaced_object_is_caught_and_its_locked_version_served(
    locked, seaweed, tmp_path, index_path
):
    sim, storage, bucket = locked
    small = next(c for c in sim.calls if c.size <= BUFFER_BOUND)
    big = next(c for c in sim.calls if c.size > BUFFER_BOUND)
    async with open_store(storage) as store:
        found = await find_call(store, index_path, small.cdr_id)
        key = store.relative_key(found.object_key)
        gone = await find_call(store, index_path, big.cdr_id)
        # Object Lock keeps the archived versions; a new version (same size, other
        # bytes) and a delete marker are what an overwrite or a deletion look like.
        forged = bytes(b ^ 0xFF for b in small.content())
        async with admin_client(seaweed) as client:
            archived = (await client.head_object(Bucket=bucket, Key=found.object_key))["VersionId"]
            await client.put_object(
                Bucket=bucket,
                Key=found.object_key,
                Body=forged,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(forged).digest()).decode(),
            )
            await client.delete_object(Bucket=bucket, Key=gone.object_key)
        fetched = await fetch_to_file(store, found, tmp_path / "small.wav")
        assert (fetched.version_id, fetched.sha256) == (archived, small.sha256())
        assert fetched.replaced is not None
        assert fetched.replaced.startswith("corrupt: ")
        restored = await fetch_to_file(store, gone, tmp_path / "big.wav")  # multipart: re-hashed
        assert restored.sha256 == big.sha256()
        assert restored.replaced is not None
        assert restored.replaced.startswith("missing: ")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big.wav", "small.wav"]
        # A legal hold goes on the archived version, not on the forged one.
        assert await archived_version(store, key, found, trust_single=True) == archived

        manifests = await list_manifests(store, None, None, HCM)
        report = await verify_archive(store, manifests)
        assert {(p.kind, p.where) for p in report.problems} == {
            (ProblemKind.MISSING, store.relative_key(gone.object_key)),
            (ProblemKind.CORRUPT, key),
        }
        assert all("still holds the archived bytes" in p.detail for p in report.problems)


async def test_a_corrupt_object_in_a_bucket_without_versions_is_refused(
    make_bucket, s3_settings, seaweed, tmp_path
):
    bucket = await make_bucket()
    storage = s3_settings(bucket)
    data = b"RIFF" + bytes(range(256)) * 8
    line = {
        "sip_call_id": "s1",
        "cdr_id": "c1",
        "provider": "cdr_v2",
        "object_key": "prefix/recordings/s1.wav",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    content = (json.dumps(line) + "\n").encode()
    manifest_key = "manifests/date=2021-02-17/000000000001-test.jsonl"
    async with open_store(storage) as store:
        await store.put_bytes("recordings/s1.wav", data, sha256=line["sha256"], content_type="x")
        digest = hashlib.sha256(content).hexdigest()
        await store.put_bytes(manifest_key, content, sha256=digest, content_type="x")
        await write_pointers(store, [ManifestEntry.from_line(line, manifest_key)])
        async with admin_client(seaweed) as client:
            forged = data[:-1] + b"!"
            checksum = base64.b64encode(hashlib.sha256(forged).digest()).decode()
            await client.put_object(
                Bucket=bucket, Key=line["object_key"], Body=forged, ChecksumSHA256=checksum
            )
        call = await resolve(store, "c1")
        with pytest.raises(IntegrityError, match="corrupt: .* has SHA-256"):
            await fetch_to_file(store, call, tmp_path / "out.wav")
        assert list(tmp_path.iterdir()) == [], "a file was left behind"
        with pytest.raises(IntegrityError, match="corrupt: "):
            await presigned_url(store, call, 60)
        report = await verify_archive(store, await list_manifests(store, None, None, HCM))
        # Issue 20: a legacy manifest object no seal recorded is OUT-OF-CHAIN besides.
        assert [(p.kind, p.where) for p in report.problems] == [
            (ProblemKind.OUT_OF_CHAIN, manifest_key),
            (ProblemKind.CORRUPT, "recordings/s1.wav"),
        ]
        assert "still holds" not in report.problems[1].detail


async def test_check_reports_the_lock_and_refuses_retention_a_bucket_cannot_honour(
    make_bucket, s3_settings
):
    from archiver.commands.check import check_protection

    locked_bucket = await make_bucket(object_lock=True)
    plain_bucket = await make_bucket()
    lock = {"object_lock_mode": "COMPLIANCE", "retention_days": 3650}
    report = await check_protection(Settings(storage=s3_settings(locked_bucket, **lock)))
    assert "versioning enabled; Object Lock enabled" in report
    assert "locked COMPLIANCE for 3650 days" in report
    bare = await check_protection(Settings(storage=s3_settings(locked_bucket)))
    assert "WARNING: no retention is set" in bare
    plain = await check_protection(Settings(storage=s3_settings(plain_bucket)))
    assert "no Object Lock" in plain
    with pytest.raises(ConfigError, match="OBJECT_LOCK_MODE=COMPLIANCE: the bucket has no Object"):
        await check_protection(Settings(storage=s3_settings(plain_bucket, **lock)))


async def test_a_shared_sip_call_id_keeps_every_call_and_get_refuses_to_guess(tmp_path):
    storage = StorageSettings(url=str(tmp_path / "archive"))
    lines = []
    for cdr in ("cdr-a", "cdr-b"):
        data = f"RIFF{cdr}".encode()
        lines.append(
            {
                "sip_call_id": "shared@pbx",
                "cdr_id": cdr,
                "provider": "cdr_v2",
                "object_key": f"recordings/{cdr}.wav",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "call_started_at": "2021-02-17T08:00:00+07:00",
            }
        )
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    manifest_key = "manifests/date=2021-02-17/000000000001-test.jsonl"
    async with open_store(storage) as store:
        for line in lines:
            data = f"RIFF{line['cdr_id']}".encode()
            await store.put_bytes(
                str(line["object_key"]), data, sha256=str(line["sha256"]), content_type="audio/wav"
            )
        await store.put_bytes(
            manifest_key,
            content,
            sha256=hashlib.sha256(content).hexdigest(),
            content_type="application/x-ndjson",
        )
        calls = [ManifestEntry.from_line(line, manifest_key) for line in lines]
        assert await write_pointers(store, calls) == 4  # 2 under the shared id, 1 per cdr id
        assert await write_pointers(store, calls) == 0  # idempotent
        assert len(await lookup(store, "shared@pbx")) == 2
        with pytest.raises(AmbiguousIdError, match="cdr cdr-a .*cdr cdr-b"):
            await resolve(store, "shared@pbx")
        assert (await resolve(store, "cdr-b")).cdr_id == "cdr-b"


async def test_a_pointer_that_disagrees_with_its_manifest_is_not_followed(tmp_path):
    storage = StorageSettings(url=str(tmp_path / "archive"))
    line = {
        "sip_call_id": "s1",
        "cdr_id": "c1",
        "provider": "cdr_v2",
        "object_key": "recordings/s1.wav",
        "sha256": "0" * 64,
        "size": 4,
    }
    content = (json.dumps(line) + "\n").encode()
    key = "manifests/date=2021-02-17/000000000001-test.jsonl"
    async with open_store(storage) as store:
        await store.put_bytes(
            key, content, sha256=hashlib.sha256(content).hexdigest(), content_type="x"
        )
        # A pointer naming other bytes than the manifest line does.
        forged = ManifestEntry.from_line({**line, "sha256": "1" * 64}, key)
        await write_pointers(store, [forged])
        with pytest.raises(IntegrityError, match="does not match its manifest"):
            await resolve(store, "s1")


@pytest.mark.parametrize("spoiled", ["garbage", "directory"])
async def test_get_finds_a_call_when_its_local_index_cannot_be_opened(tmp_path, spoiled, caplog):
    """A garbage index file or a directory in its place: the index is built in memory."""
    sim = Simulator(
        SimConfig(seed=8, calls=4, recording_fraction=1.0, min_size=4_000, max_size=20_000)
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    await _archive(sim, storage, tmp_path)
    index = tmp_path / "index.sqlite3"
    if spoiled == "garbage":
        index.write_bytes(b"not a database, " * 512)
    else:
        index.mkdir()
    async with open_store(storage) as store:
        for call in sim.calls:
            found = await find_call(store, index, call.sip_call_id)
            assert (found.cdr_id, found.sha256) == (call.cdr_id, call.sha256())
    assert "built in memory for this command" in caplog.text
    if spoiled == "garbage":
        assert index.read_bytes() == b"not a database, " * 512  # left as it was
