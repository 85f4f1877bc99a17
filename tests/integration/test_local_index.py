"""``get``'s local id index on a real archive (a local directory) and a real SQLite file:
built from the manifests alone, brought up to date with only what is new, safe to
interrupt and to share, and never the last word (the manifest object is)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.commands.finding import find_call
from archiver.index_db import IndexDatabase
from archiver.retrieval.errors import CallNotFoundError, IntegrityError, IntegrityKind
from archiver.retrieval.local_index import SCHEMA, IdIndex, id_hash
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from tests.support.pipeline import backfill, make_settings


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Simulator, StorageSettings]:
    """Eight calls archived by a real backfill into a directory, in several manifest objects."""
    tmp = tmp_path_factory.mktemp("archive")
    sim = Simulator(
        SimConfig(seed=14, calls=8, recording_fraction=1.0, min_size=2_000, max_size=8_000)
    )
    storage = StorageSettings(url=str(tmp / "archive"))

    async def run() -> None:
        async with sim.serve() as base:
            settings = make_settings(
                sim, base, storage, str(tmp / "state.sqlite3"), manifest_batch=3
            )
            _, counts = await backfill(settings, sim)
        assert counts["failed"] == 0

    asyncio.run(run())
    return sim, storage


@pytest.fixture
def index(tmp_path) -> Path:
    """The local index file (absent at first, as on a machine that never saw the archive)."""
    return tmp_path / "index.sqlite3"


def _rows(index: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(index) as conn:
        query = "SELECT h.hash, m.key FROM id_hashes h JOIN id_manifests m ON m.id = h.manifest"
        return sorted(conn.execute(query).fetchall())


async def _refresh(index: Path, *stores: ObjectStore, concurrency: int = 16) -> list[int]:
    """Each store's refresh of the index at ``index``, at once, each on its own connection."""
    dbs = [IndexDatabase(index, SCHEMA) for _ in stores]
    try:
        refreshes = (IdIndex(db).refresh(s, concurrency) for db, s in zip(dbs, stores, strict=True))
        return list(await asyncio.gather(*refreshes))
    finally:
        for db in dbs:
            db.close()


class _FailingReads:
    """The storage, whose reads of manifest objects fail after ``allowed`` of them (a crash)."""

    def __init__(self, store: ObjectStore, allowed: int) -> None:
        self._store = store
        self.allowed = allowed

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def read(self, key: str, *args: object, **kwargs: object) -> AsyncIterator[bytes]:
        if key.startswith("manifests/"):
            if self.allowed == 0:
                raise OSError("the storage went away")
            self.allowed -= 1
        async for chunk in self._store.read(key, *args, **kwargs):
            yield chunk


async def test_built_from_the_manifests_then_only_new_ones_are_read(archive, index) -> None:
    sim, storage = archive
    async with open_store(storage) as store:
        manifests = [o.key async for o in store.list("manifests/")]
        assert len(manifests) >= 3
        db = IndexDatabase(index, SCHEMA)
        try:
            ids = IdIndex(db)
            assert await ids.refresh(store) == len(manifests)
            assert await ids.refresh(store) == 0  # nothing new: one listing, no read
            for call in sim.calls:
                for ident in (call.sip_call_id, call.cdr_id, f" {call.cdr_id}\t"):
                    [key] = await ids.manifests_of(ident)
                    assert key in manifests
            assert await ids.manifests_of("never-archived") == []
        finally:
            db.close()
        for call in sim.calls:
            found = await find_call(store, index, call.cdr_id)
            assert (found.sip_call_id, found.sha256) == (call.sip_call_id, call.sha256())


async def test_an_interrupted_build_keeps_whole_manifests_and_the_next_one_finishes(
    archive, index
) -> None:
    sim, storage = archive
    async with open_store(storage) as store:
        listed = [o.key async for o in store.list("manifests/")]
        with pytest.raises(OSError, match="went away"):
            await _refresh(index, _FailingReads(store, allowed=1), concurrency=1)  # type: ignore[arg-type]
        partial = _rows(index)
        [kept] = {key for _, key in partial}  # the one manifest read before the failure
        assert kept in listed
        with sqlite3.connect(index) as conn:
            assert conn.execute("SELECT key FROM id_manifests").fetchall() == [(kept,)]
        content = b"".join([chunk async for chunk in store.read(kept)])
        ids = {
            id_hash(str(json.loads(raw)[name]))
            for raw in content.splitlines()
            for name in ("sip_call_id", "cdr_id")
        }
        assert {h for h, _ in partial} == ids  # all its ids, committed with it
        for call in sim.calls:  # the next command completes it
            assert (await find_call(store, index, call.sip_call_id)).cdr_id == call.cdr_id
    assert {key for _, key in _rows(index)} == set(listed)


async def test_two_commands_building_one_file_at_once_index_each_manifest_once(
    archive, index
) -> None:
    _, storage = archive
    async with open_store(storage) as store:
        added = await _refresh(index, store, store)
        listed = [o.key async for o in store.list("manifests/")]
    assert sum(added) >= len(listed)
    with sqlite3.connect(index) as conn:
        assert conn.execute("SELECT COUNT(*) FROM id_manifests").fetchone()[0] == len(listed)
    rows = _rows(index)
    assert len(rows) == len(set(rows))


async def test_a_hash_that_collides_costs_a_read_not_a_wrong_answer(archive, index) -> None:
    _, storage = archive
    async with open_store(storage) as store:
        with pytest.raises(CallNotFoundError):
            await find_call(store, index, "no-such-call")  # builds the index
        with sqlite3.connect(index) as conn:  # "no-such-call" now names an intact manifest
            conn.execute("INSERT INTO id_hashes VALUES (?, 1)", (id_hash("no-such-call"),))
        with pytest.raises(CallNotFoundError):
            await find_call(store, index, "no-such-call")


async def test_a_line_removed_from_its_manifest_after_indexing_is_refused(archive, index) -> None:
    """The index remembers the call was there; the manifest object no longer says so: its
    chain link proves the object was changed (exit 5), not that the call never was."""
    sim, storage = archive
    call = sim.calls[0]
    async with open_store(storage) as store:
        found = await find_call(store, index, call.sip_call_id)
        assert found.manifest_key is not None
        path = Path(storage.url) / found.manifest_key
        original = path.read_bytes()
        kept = [raw for raw in original.splitlines() if json.loads(raw)["cdr_id"] != call.cdr_id]
        path.chmod(0o644)
        try:
            path.write_bytes(b"".join(raw + b"\n" for raw in kept))
            with pytest.raises(IntegrityError, match="was altered") as caught:
                await find_call(store, index, call.sip_call_id)
            assert caught.value.kind is IntegrityKind.CORRUPT
        finally:
            path.write_bytes(original)
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(original).digest()


async def test_an_index_file_another_process_keeps_locked_is_left_to_it(
    archive, index, caplog
) -> None:
    """The console building its index in the same file holds SQLite's write lock for
    seconds at a time: get builds its index in memory rather than fail with a traceback."""
    sim, storage = archive
    IndexDatabase(index, SCHEMA).close()
    holder = sqlite3.connect(index, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer, past the 5 s busy timeout
        async with open_store(storage) as store:
            found = await find_call(store, index, sim.calls[1].cdr_id)
        assert found.sip_call_id == sim.calls[1].sip_call_id
    finally:
        holder.close()
    assert "is busy (database is locked): built in memory instead" in caplog.text
    assert _rows(index) == []  # nothing written behind the other writer's back


@pytest.mark.parametrize("staged", [False, True])
def test_a_batch_written_whole_keeps_every_hash_and_hint_exactly(tmp_path, staged) -> None:
    # The batch goes to SQLite as JSON texts: the 64-bit ends and a hint's NULLs come out
    # as they went in; a key already indexed (by another command) is done, not added to.
    from archiver.retrieval.id_store import store as _store
    from archiver.retrieval.id_store import unstage as _unstage

    conn = sqlite3.connect(tmp_path / "i.sqlite3", isolation_level=None)
    conn.executescript(SCHEMA)
    _store(conn, [("manifests/a.jsonl", [5])])
    extremes = [-(2**63), -1, 0, 2**63 - 1]
    batch = [("manifests/a.jsonl", [6]), ("manifests/b.jsonl", extremes), ("manifests/c", [])]
    hints = [("w1", 1, "a" * 64, None, None), ("w1", 2, "b" * 64, 1, "a" * 64)]
    _store(conn, batch, rollup="_archiver/rollups/w1/000000000001.json", hints=hints, staged=staged)
    if staged:
        _unstage(conn)
    rows = conn.execute(
        "SELECT m.key, h.hash FROM id_hashes h JOIN id_manifests m ON m.id = h.manifest "
        "UNION ALL SELECT 'staged', hash FROM id_hashes_staged ORDER BY 1, 2"
    ).fetchall()
    assert rows == [("manifests/a.jsonl", 5), *(("manifests/b.jsonl", h) for h in extremes)]
    keys = conn.execute("SELECT key FROM id_manifests ORDER BY key").fetchall()
    assert keys == [("manifests/a.jsonl",), ("manifests/b.jsonl",), ("manifests/c",)]
    assert conn.execute("SELECT * FROM proven_links ORDER BY seq").fetchall() == hints
    assert conn.execute("SELECT key FROM id_rollups").fetchall() == [
        ("_archiver/rollups/w1/000000000001.json",)
    ]
    assert all(type(h) is int for (_, h) in rows)
