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
    db = IndexDatabase(path, SCHEMA)
    try:
        index = IdIndex(db, pool_after=pool_after)
        await index.refresh(store)
        return index.pooled
    finally:
        db.close()


async def test_a_build_in_workers_gives_the_index_a_build_in_the_process_gives(
    tmp_path, caplog
) -> None:
    sim = Simulator(
        SimConfig(seed=21, calls=10, recording_fraction=1.0, min_size=2_000, max_size=8_000)
    )
    root = tmp_path / "archive"
    storage = StorageSettings(url=str(root))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"), manifest_batch=2)
        await backfill(settings, sim)
    (writer,) = [p.name for p in (root / "_archiver" / "chain").iterdir()]
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
