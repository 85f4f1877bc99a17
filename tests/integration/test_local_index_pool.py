"""``get``'s local id index built from nothing through worker processes (a real backfill into
a directory, real rollups, real SQLite files): the same index as a build in the process,
a rollup that does not check out (altered lines, a missing part) set aside the same way."""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from archiver.index_db import IndexDatabase
from archiver.manifest.rollup_write import RollupWriter
from archiver.retrieval import id_store, local_index
from archiver.retrieval.index import normalize_id
from archiver.retrieval.local_index import SCHEMA, IdIndex, id_hash
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.storage.layout import rollup_data_key
from tests.support.pipeline import backfill, make_settings


def _contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the index's tables, by key (not by the file's own row numbers)."""
    with sqlite3.connect(path) as conn:
        queries = {
            "manifests": "SELECT key FROM id_manifests",
            "hashes": "SELECT h.hash, m.key FROM id_hashes h JOIN id_manifests m "
            "ON m.id = h.manifest",
            "rollups": "SELECT key FROM id_rollups",
            "links": "SELECT * FROM proven_links",
        }
        return {name: sorted(conn.execute(q).fetchall()) for name, q in queries.items()}


def _rollup_warnings(records: list[logging.LogRecord]) -> list[str]:
    """The rollup readers' warnings (other loggers' are not this test's)."""
    return [r.getMessage() for r in records if r.name == "archiver.rollups"]


async def _build(path: Path, store: ObjectStore, pool_after: int) -> int:
    """The rollups checked out of this process (in a worker, or here while it was busy)."""
    db = IndexDatabase(path, SCHEMA)
    try:
        index = IdIndex(db, pool_after=pool_after)
        await index.refresh(store)
        assert index.pooled >= 1 or index.shared == 0  # this process only shares the work
        return index.pooled + index.shared
    finally:
        db.close()


async def _backfilled(tmp_path: Path, seed: int) -> tuple[Simulator, Path, StorageSettings, str]:
    """A backfill of 10 simulated calls into a folder, 2 a manifest object: its simulator,
    folder, storage and writer."""
    sim = Simulator(
        SimConfig(seed=seed, calls=10, recording_fraction=1.0, min_size=2_000, max_size=8_000)
    )
    root = tmp_path / "archive"
    storage = StorageSettings(url=str(root))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"), manifest_batch=2)
        await backfill(settings, sim)
    (writer,) = [p.name for p in (root / "_archiver" / "chain").iterdir()]
    return sim, root, storage, writer


async def test_a_build_in_workers_gives_the_index_a_build_in_the_process_gives(
    tmp_path, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(local_index, "_cores", lambda: 2)  # workers on a machine of one core too
    sim, root, storage, writer = await _backfilled(tmp_path, seed=21)
    async with open_store(storage) as store:
        done = await RollupWriter(store, writer, now=lambda: datetime.now(UTC), max_objects=1).run()
        assert len(done.records) >= 4
        # One rollup's lines altered (its check fails), one's lines gone (unreadable).
        altered = root / rollup_data_key(writer, done.records[0].n)
        os.chmod(altered, 0o600)
        altered.write_bytes(altered.read_bytes().replace(b"cdr_v2", b"cdr_v3", 1))
        (root / rollup_data_key(writer, done.records[1].n)).unlink()

        caplog.set_level(logging.WARNING, logger="archiver.rollups")
        in_process = await _build(tmp_path / "one.sqlite3", store, pool_after=10**6)
        warned_in_process = _rollup_warnings(caplog.records)
        caplog.clear()
        pooled = await _build(tmp_path / "pool.sqlite3", store, pool_after=0)
        warned_pooled = _rollup_warnings(caplog.records)

    assert (in_process, pooled) == (0, len(done.records) - 1)  # the unreadable one: no worker
    expected = _contents(tmp_path / "one.sqlite3")
    assert _contents(tmp_path / "pool.sqlite3") == expected
    assert warned_pooled == warned_in_process
    assert len(warned_pooled) == 1  # the altered one's check; the unreadable one is not logged
    assert done.records[0].key in warned_pooled[0]
    # Every rollup marked read, and every call found (the set-aside ones' from the listing).
    assert len(expected["rollups"]) == len(done.records)
    assert len(expected["links"]) == sum(r.objects for r in done.records[2:])
    hashed = {h for h, _ in expected["hashes"]}
    archived = [c for c in sim.calls if c.has_recording]
    assert archived
    assert all(id_hash(normalize_id(c.sip_call_id)) in hashed for c in archived)


async def test_a_build_from_nothing_stages_its_hashes_then_sorts_them_in_and_a_kill_loses_none(
    tmp_path, monkeypatch
) -> None:
    """A build from nothing appends each rollup's id hashes to id_hashes_staged and moves them
    into id_hashes in one sorted insert at the end. Killed before that move (here: the move
    turned off), every call is still found (lookups read both tables), and the next update
    moves them: the same index as an uninterrupted build, nothing left staged."""
    monkeypatch.setattr(local_index, "_cores", lambda: 2)  # workers on a machine of one core too
    sim, root, storage, writer = await _backfilled(tmp_path, seed=23)
    archived = [c for c in sim.calls if c.has_recording]
    assert len(archived) >= 4
    async with open_store(storage) as store:
        done = await RollupWriter(store, writer, now=lambda: datetime.now(UTC), max_objects=1).run()
        assert len(done.records) >= 4
        whole = await _build(tmp_path / "whole.sqlite3", store, pool_after=10**6)
        assert whole == 0
        for pool_after in (10**6, 0):  # in the process, then through the workers
            path = tmp_path / f"killed-{pool_after}.sqlite3"
            with monkeypatch.context() as crash:
                crash.setattr(id_store, "unstage", lambda conn: None)
                await _build(path, store, pool_after=pool_after)
            assert _staged(path) > 0
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT COUNT(*) FROM id_hashes").fetchone() == (0,)
            db = IndexDatabase(path, SCHEMA)
            try:
                ids = IdIndex(db)
                for call in archived:
                    keys = await ids.manifests_of(call.sip_call_id)
                    assert keys, call.sip_call_id
                    assert keys == await ids.manifests_of(call.cdr_id)
                await ids.refresh(store)  # the next update moves them
            finally:
                db.close()
            assert _staged(path) == 0
            assert _contents(path) == _contents(tmp_path / "whole.sqlite3")
    assert _staged(tmp_path / "whole.sqlite3") == 0
    hashed = {h for h, _ in _contents(tmp_path / "whole.sqlite3")["hashes"]}
    assert all(id_hash(normalize_id(c.sip_call_id)) in hashed for c in archived)


def _staged(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM id_hashes_staged").fetchone()
        return int(count)
