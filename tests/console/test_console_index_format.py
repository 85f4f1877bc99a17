"""An index file of another format (an older console's, or a newer one's) is rebuilt on
open, with one line saying so; the console's own records in it stay."""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archiver.console.app import open_console
from archiver.console.index import CallQuery
from archiver.console.tables import FORMAT
from archiver.settings import ConsoleSettings
from archiver.storage import open_store
from tests.support.console import manifest_calls, write_users

# The layout of format 2 (2026-12-04 to 12-05): terms as text, no format row.
_FORMAT_2 = """
CREATE TABLE manifests (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
    lines INTEGER NOT NULL, bad_lines INTEGER NOT NULL);
CREATE TABLE calls (id INTEGER PRIMARY KEY, manifest INTEGER NOT NULL, provider TEXT NOT NULL,
    sip_h INTEGER NOT NULL, cdr_h INTEGER NOT NULL, started INTEGER, billsec INTEGER,
    direction TEXT, extension TEXT, status TEXT, customer TEXT, checked_at TEXT,
    problem TEXT, line BLOB NOT NULL);
CREATE TABLE terms (kind TEXT NOT NULL, value TEXT NOT NULL, started INTEGER,
    call_id INTEGER NOT NULL, PRIMARY KEY (kind, value, started, call_id)) WITHOUT ROWID;
CREATE TABLE saved_searches (user TEXT NOT NULL, name TEXT NOT NULL, query TEXT NOT NULL,
    PRIMARY KEY (user, name));
"""


@pytest.mark.parametrize("made_by", ["format 2", "another format"])
async def test_an_index_of_another_format_is_rebuilt_with_a_log_line(
    made_by, local_archive, tmp_path, caplog
):
    root = Path(local_archive.local_path)
    first = sorted((root / "manifests").rglob("*.jsonl"))[0]
    line = first.read_text().splitlines()[0]
    path = tmp_path / "console.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(_FORMAT_2)
        if made_by == "another format":
            conn.execute("CREATE TABLE calls_format (id INTEGER PRIMARY KEY, version INTEGER)")
            conn.execute("INSERT INTO calls_format VALUES (1, ?)", (FORMAT + 1,))
        # Its first manifest object read, the line packed the old way (raw DEFLATE):
        # kept as it is, the object would never be read again and the line not decoded.
        conn.execute("INSERT INTO manifests VALUES (1, ?, 1, 0)", (str(first.relative_to(root)),))
        packer = zlib.compressobj(6, zlib.DEFLATED, -12)
        old = packer.compress(line.encode()) + packer.flush()
        conn.execute(
            "INSERT INTO calls (manifest, provider, sip_h, cdr_h, line) VALUES (1, 'x', 1, 2, ?)",
            (old,),
        )
        conn.execute("INSERT INTO saved_searches VALUES ('ann', 'mine', 'phone=1')")
    conn.close()
    write_users(tmp_path / "users")
    settings = ConsoleSettings.model_validate(
        {"index_path": path, "users_file": tmp_path / "users", "cookie_secure": False}
    )
    async with open_store(local_archive) as store:
        calls = await manifest_calls(store)
        with caplog.at_level(logging.WARNING, logger="archiver.console"):
            console = open_console(settings, ZoneInfo("Asia/Ho_Chi_Minh"), store)
        try:
            said = [r.getMessage() for r in caplog.records if "another version" in r.getMessage()]
            assert len(said) == 1
            assert str(path) in said[0]
            await console.calls.refresh(store)
            assert await console.calls.count() == len(calls)
            found, total = await console.calls.search(CallQuery(), 0, 100)
            assert total == len(calls)
            assert {i.call.cdr_id for i in found} == {c.cdr_id for c in calls}
            cut = json.loads(line)
            by_phone, _ = await console.calls.search(CallQuery(phone=cut["from_number"]), 0, 50)
            assert cut["cdr_id"] in {i.call.cdr_id for i in by_phone}
            saved = await console.calls.db.run(
                lambda c: c.execute("SELECT name FROM saved_searches").fetchall()
            )
            assert saved == [("mine",)]
        finally:
            console.calls.db.close()
    # Opened again: the format is the current one, nothing more is said or dropped.
    caplog.clear()
    async with open_store(local_archive) as store:
        with caplog.at_level(logging.WARNING, logger="archiver.console"):
            console = open_console(settings, ZoneInfo("Asia/Ho_Chi_Minh"), store)
        try:
            assert not [r for r in caplog.records if "another version" in r.getMessage()]
            assert await console.calls.count() == len(calls)
        finally:
            console.calls.db.close()


# The bound of the current format, over the same 3,000 realistic lines as test_console_index's
# (hashes and S3 proofs as random as real ones): 543 bytes a line in format 2.
FORMAT_BYTES_PER_LINE = 500


async def test_the_index_keeps_a_line_in_under_500_bytes(local_archive, tmp_path):
    from archiver.console.index import CallIndex
    from archiver.console.tables import SCHEMA
    from archiver.index_db import IndexDatabase
    from archiver.settings import StorageSettings
    from tests.console.test_console_index import _realistic_lines

    first = sorted(Path(local_archive.local_path, "manifests").rglob("*.jsonl"))[0]
    lines = _realistic_lines(json.loads(first.read_text().split("\n")[0]), 3000)
    archive = tmp_path / "realistic"
    for batch in range(3):
        path = archive / f"manifests/date=2021-02-17/{batch:012d}-bench.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines[batch * 1000 : (batch + 1) * 1000]) + "\n")
    empty = tmp_path / "empty.sqlite3"
    IndexDatabase(empty, SCHEMA).close()
    async with open_store(StorageSettings(url=str(archive))) as store:
        db = IndexDatabase(tmp_path / "index.sqlite3", SCHEMA)
        index = CallIndex(db)
        assert (await index.refresh(store)).lines == 3000
        # Every line found back exactly, by its phone number's term.
        for raw in lines[::499]:
            fields = json.loads(raw)
            found, _ = await index.search(CallQuery(phone=fields["from_number"]), 0, 50)
            assert fields in [dict(i.call.fields) for i in found]
        await db.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.close()
    grown = (tmp_path / "index.sqlite3").stat().st_size - empty.stat().st_size
    assert grown / 3000 < FORMAT_BYTES_PER_LINE, grown / 3000


async def test_a_build_prepared_in_worker_processes_gives_the_same_index(
    two_batch_archive, tmp_path, monkeypatch
):
    from archiver.console import updates
    from archiver.console.index import CallIndex
    from archiver.console.tables import SCHEMA
    from archiver.index_db import IndexDatabase

    pools: list[object] = []

    class Counted(updates.ProcessPoolExecutor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            pools.append(self)

    async def build(name: str, workers: int) -> list[tuple[str, str, list[str]]]:
        index = CallIndex(IndexDatabase(tmp_path / name, SCHEMA), workers=workers)
        try:
            await index.refresh(store)
            found, total = await index.search(CallQuery(), 0, 100)
            assert total == len(calls)
            out = []
            for item in found:
                fields = item.call.fields
                by_phone, _ = await index.search(CallQuery(phone=fields["from_number"]), 0, 50)
                by_agent, _ = await index.search(CallQuery(agent=fields["agent"]), 0, 50)
                ids = sorted(i.call.cdr_id for i in [*by_phone, *by_agent])
                out.append((item.call.cdr_id, item.call.manifest_key, ids))
            return out
        finally:
            index.db.close()

    async with open_store(two_batch_archive) as store:
        calls = await manifest_calls(store)
        monkeypatch.setattr(updates, "POOL_AFTER_LINES", 0)
        monkeypatch.setattr(updates, "ProcessPoolExecutor", Counted)
        alone = await build("alone.sqlite3", workers=0)  # the default: no process
        assert pools == []
        pooled = await build("pooled.sqlite3", workers=2)
    assert len(pools) == 1
    assert pooled == alone


async def test_workers_that_die_leave_the_build_to_the_process(
    two_batch_archive, tmp_path, monkeypatch, caplog
):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from archiver.console import updates
    from archiver.console.index import CallIndex
    from archiver.console.tables import SCHEMA
    from archiver.index_db import IndexDatabase

    class Dying:
        """A pool whose every worker dies (as when a program lacks a __main__ guard)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.sent = 0

        def submit(self, *args: object) -> Future[object]:
            self.sent += 1
            dead: Future[object] = Future()
            dead.set_exception(BrokenProcessPool("a worker died"))
            return dead

        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            pass

    monkeypatch.setattr(updates, "POOL_AFTER_LINES", 0)
    monkeypatch.setattr(updates, "ProcessPoolExecutor", Dying)
    async with open_store(two_batch_archive) as store:
        calls = await manifest_calls(store)
        index = CallIndex(IndexDatabase(tmp_path / "index.sqlite3", SCHEMA), workers=2)
        with caplog.at_level(logging.WARNING, logger="archiver.console"):
            built = await index.refresh(store)
        try:
            assert built.lines == len(calls)
            found, total = await index.search(CallQuery(), 0, 100)
            assert total == len(calls)
            assert sorted(i.call.cdr_id for i in found) == sorted(c.cdr_id for c in calls)
        finally:
            index.db.close()
    said = [r.getMessage() for r in caplog.records if "worker processes failed" in r.getMessage()]
    assert len(said) == 1
