"""The manifest chain from the storage's side: written by the writer, checked by verify,
extended over old archives by seal. On a local directory and on SeaweedFS."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from archiver.manifest.reader import list_manifests
from archiver.manifest.seal import seal
from archiver.retrieval.verify import ProblemKind, verify_archive
from archiver.settings import StorageSettings
from archiver.storage import ObjectStore, open_store
from archiver.storage.layout import head_key, link_key
from tests.support.cli import cli_env, run_cli
from tests.support.legacy import legacy_archive, legacy_line

UTC_TZ = __import__("datetime").UTC


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, make_bucket, s3_settings) -> object:
    if request.param == "local":
        return lambda: StorageSettings(url=str(tmp_path / "archive"))

    async def s3() -> StorageSettings:
        return s3_settings(await make_bucket())

    return s3


async def _settings(storage) -> StorageSettings:
    made = storage()
    return await made if hasattr(made, "__await__") else made


async def _verify(store: ObjectStore):
    return await verify_archive(store, await list_manifests(store, None, None, UTC_TZ))


async def test_a_legacy_archive_verifies_as_legacy_and_seal_chains_it(storage) -> None:
    settings = await _settings(storage)
    async with open_store(settings) as store:
        keys = await legacy_archive(store)
        before = await _verify(store)
        # Issue 20: a legacy object no seal recorded is planted history until sealed.
        assert {(p.kind, p.where) for p in before.problems} == {
            (ProblemKind.OUT_OF_CHAIN, key) for key in keys
        }
        assert before.legacy == 6
        assert before.unchained == 3
        assert "legacy lines 6 (size and stored checksum only)" in before.summary()
        assert "3 legacy manifest object(s) under no chain" in before.summary()

        done = await seal(store)
        assert (done.sealed, done.chained, done.skipped) == (3, 0, [])
        assert done.writer is not None
        after = await _verify(store)
        assert after.ok, [p.line() for p in after.problems]
        assert not after.proven  # legacy lines: checked, not proven
        assert (after.links, after.unchained, after.writers) == (3, 0, 1)
        again = await seal(store)
        assert (again.writer, again.sealed, again.chained) == (None, 0, 3)
        # Sealed: a manifest object removed is now missed.
        await store.delete(keys[1]) if settings.is_s3 else Path(settings.url, keys[1]).unlink()
        gone = await _verify(store)
        found = {(p.kind, p.where) for p in gone.problems}
        assert (ProblemKind.MANIFEST_MISSING, keys[1]) in found
        # Its lines' index pointers now point at nothing the manifest holds.
        assert {p.kind for p in gone.problems} == {
            ProblemKind.MANIFEST_MISSING,
            ProblemKind.INDEX,
        }
        assert len(gone.problems) == 1 + 4


async def test_the_chain_catches_a_cut_a_rollback_and_an_unlinked_manifest(
    storage, tmp_path
) -> None:
    settings = await _settings(storage)
    async with open_store(settings) as store:
        keys = await legacy_archive(store)
        done = await seal(store)
        writer = done.writer
        assert writer is not None

        def remove(key: str):
            if settings.is_s3:
                return store.delete(key)
            Path(settings.url, key).unlink()
            return _noop()

        # The newest manifest object and its link removed: the head still names it.
        await remove(keys[2])
        await remove(link_key(writer, 3))
        cut = await _verify(store)
        assert (ProblemKind.CHAIN_BROKEN, head_key(writer)) in {
            (p.kind, p.where) for p in cut.problems
        }
        # A link in the middle removed: the next one names it.
        await remove(link_key(writer, 1))
        middle = await _verify(store)
        assert (ProblemKind.CHAIN_BROKEN, link_key(writer, 1)) in {
            (p.kind, p.where) for p in middle.problems
        }
        # A manifest object with proof lines that no link records.
        line = {**legacy_line(99, store), "etag": None, "version_id": None}
        content = (json.dumps(line) + "\n").encode()
        stray = "manifests/date=2021-02-17/000000000099-w0000000000000000.jsonl"
        digest = hashlib.sha256(content).hexdigest()
        await store.put_bytes(stray, content, sha256=digest, content_type="x/y")
        unlinked = await _verify(store)
        assert (ProblemKind.OUT_OF_CHAIN, stray) in {(p.kind, p.where) for p in unlinked.problems}


async def _noop() -> None:
    return None


async def test_seal_from_the_command_line(tmp_path) -> None:
    settings = StorageSettings(url=str(tmp_path / "archive"))
    async with open_store(settings) as store:
        await legacy_archive(store, manifests=2)
    env = cli_env({"ARCHIVER_STORAGE__URL": settings.url})
    sealed = await run_cli("seal", env=env, cwd=tmp_path)
    assert sealed.code == 0, sealed.err
    assert sealed.out.startswith("sealed 2 manifest object(s) under chain seal-")
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    # Legacy lines are not proven: exit 5, as the contract says (issue 20 changed it from 0).
    assert verified.code == 5, verified.out + verified.err
    assert "nothing found wrong, but not all proven" in verified.out
    assert "chain: 2 manifest object(s) linked by 1 writer(s)" in verified.out
    assert "re-hashed 4" in verified.out  # a local file keeps no checksum: read back


async def test_a_link_beside_the_chain_or_past_its_head_is_not_proof(storage) -> None:
    """A forged link that names a real predecessor proves nothing: the head vouches
    only for the links a walk back from it reaches."""
    from archiver.manifest.chain import Link, next_link, sha256_hex

    settings = await _settings(storage)
    async with open_store(settings) as store:
        await legacy_archive(store)
        done = await seal(store)
        writer = done.writer
        assert writer is not None
        assert (await _verify(store)).problems == []
        first_bytes = await _read(store, link_key(writer, 1))
        first = Link.from_bytes(first_bytes)
        assert first.prev_seq is None

        async def forge(seq: int, day: str) -> str:
            """A manifest object of proof lines and a link to it after link 1."""
            line = {**legacy_line(500 + seq, store), "etag": "e", "version_id": None}
            content = (json.dumps(line) + "\n").encode()
            key = f"manifests/date={day}/{seq:012d}-forged.jsonl"
            digest = hashlib.sha256(content).hexdigest()
            await store.put_bytes(key, content, sha256=digest, content_type="x/y")
            link = next_link(writer, seq, key, content, 1, (1, sha256_hex(first_bytes)))
            body = link.to_bytes()
            await store.put_bytes(
                link.key, body, sha256=hashlib.sha256(body).hexdigest(), content_type="x/y"
            )
            return link.key

        past = await forge(7, "2021-02-18")
        report = await _verify(store)
        assert (ProblemKind.UNPROVEN, past) in {(p.kind, p.where) for p in report.problems}
        assert "all intact" not in report.summary()


async def test_a_fork_below_the_head_is_a_broken_chain(storage) -> None:
    from archiver.manifest.chain import Head, Link, next_link, sha256_hex

    settings = await _settings(storage)
    async with open_store(settings) as store:
        await legacy_archive(store, manifests=3)
        writer = (await seal(store)).writer
        assert writer is not None
        head = Head.from_bytes(await _read(store, head_key(writer)))
        assert head.seq == 3
        # Link 3 rewritten? No: a new link numbered 0 beside link 1, reached by no walk.
        first_bytes = await _read(store, link_key(writer, 1))
        line = {**legacy_line(600, store), "etag": "e", "version_id": None}
        content = (json.dumps(line) + "\n").encode()
        key = "manifests/date=2021-02-17/000000000600-forged.jsonl"
        await store.put_bytes(
            key, content, sha256=hashlib.sha256(content).hexdigest(), content_type="x/y"
        )
        assert Link.from_bytes(first_bytes).seq == 1
        link = next_link(writer, 0, key, content, 1, (1, sha256_hex(first_bytes)))
        body = link.to_bytes()
        await store.put_bytes(
            link.key, body, sha256=hashlib.sha256(body).hexdigest(), content_type="x/y"
        )
        report = await _verify(store)
        kinds = {(p.kind, p.where) for p in report.problems}
        assert (ProblemKind.CHAIN_BROKEN, link.key) in kinds
        # Its manifest object is then under no valid link.
        assert (ProblemKind.OUT_OF_CHAIN, key) in kinds


async def _read(store: ObjectStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])
