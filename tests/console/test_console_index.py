"""The console's SQLite index over a real archive: incremental, deduplicated, rebuildable."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import uuid
from pathlib import Path

from archiver.console.index import CallIndex, CallQuery
from archiver.console.tables import SCHEMA
from archiver.index_db import IndexDatabase
from archiver.retrieval.search import phone_key
from archiver.settings import StorageSettings
from archiver.storage import open_store
from tests.support.console import manifest_calls


def _manifests(root: Path) -> list[Path]:
    return sorted((root / "manifests").rglob("*.jsonl"))


async def test_updates_read_only_new_manifests_and_rebuild_gives_the_same(local_archive, tmp_path):
    root = Path(local_archive.local_path)
    async with open_store(local_archive) as store:
        calls = await manifest_calls(store)
        index = CallIndex(IndexDatabase(tmp_path / "index.sqlite3", SCHEMA))
        first = await index.refresh(store)
        assert (first.manifests, first.lines) == (len(_manifests(root)), len(calls))
        assert await index.count() == len(calls)
        again = await index.refresh(store)
        assert (again.manifests, again.lines) == (0, 0)

        # A new manifest object: two new calls, one line of an old one (listed twice),
        # and one damaged line.
        template = json.loads(_manifests(root)[0].read_text().splitlines()[0])
        new = [
            {**template, "cdr_id": f"new-{i}", "sip_call_id": f"new-sip-{i}", "sha256": f"{i:064x}"}
            for i in range(2)
        ]
        lines = [json.dumps(x) for x in [*new, template]] + ['{"sip_call_id": "half a line']
        (root / "manifests/date=2021-02-18").mkdir()
        (root / "manifests/date=2021-02-18/000000000099-late.jsonl").write_text("\n".join(lines))
        update = await index.refresh(store)
        assert (update.manifests, update.lines, update.bad_lines) == (1, 3, 1)
        assert await index.count() == len(calls) + 2
        found, total = await index.search(CallQuery(ident="new-sip-1"), 0, 10)
        assert total == 1
        assert found[0].call.cdr_id == "new-1"
        index.db.close()

        rebuilt = CallIndex(IndexDatabase.fresh(tmp_path / "index.sqlite3", SCHEMA))
        await rebuilt.refresh(store)
        assert await rebuilt.count() == len(calls) + 2
        rebuilt.db.close()


async def test_search_criteria_match_as_the_cli_does(local_archive, tmp_path):
    async with open_store(local_archive) as store:
        calls = await manifest_calls(store)
        index = CallIndex(IndexDatabase(tmp_path / "index.sqlite3", SCHEMA))
        await index.refresh(store)

        async def cdrs(**criteria) -> set[str]:
            found, total = await index.search(CallQuery(**criteria), 0, 1000)
            assert total == len(found)
            ids = [item.call.cdr_id for item in found]
            assert len(ids) == len(set(ids)), "a call listed twice"
            return set(ids)

        for call in calls:
            for field in ("from_number", "to_number"):
                number = str(call.fields.get(field) or "")
                if not number:
                    continue
                key = phone_key(number)
                expected = {
                    c.cdr_id
                    for c in calls
                    if key
                    in {phone_key(str(c.fields.get(f) or "")) for f in ("from_number", "to_number")}
                }
                spelled = "+84 " + key[1:] if key.startswith("0") and len(key) == 10 else number
                assert await cdrs(phone=spelled) == expected
            agent = str(call.fields.get("agent_name") or "")
            if agent:
                expected = {
                    c.cdr_id
                    for c in calls
                    if agent.casefold()
                    in {str(c.fields.get(f) or "").casefold() for f in ("agent", "agent_name")}
                }
                assert await cdrs(agent=agent.upper()) == expected
            assert call.cdr_id in await cdrs(ident=call.sip_call_id)
            assert await cdrs(ident=call.cdr_id) == {call.cdr_id}
        started = sorted(c.call_started_at for c in calls if c.call_started_at)
        assert await cdrs(since=started[1], until=started[-1]) == {
            c.cdr_id
            for c in calls
            if c.call_started_at and started[1] <= c.call_started_at < started[-1]
        }
        inbound = {c.cdr_id for c in calls if c.fields.get("direction") == "inbound"}
        assert await cdrs(direction="inbound") == inbound
        page, total = await index.search(CallQuery(), 0, 2)
        assert total == len(calls)
        assert [p.call.call_started_at for p in page] == sorted(started, reverse=True)[:2]
        index.db.close()


# Bytes of index file per manifest line, over 3,000 realistic lines (hashes and S3 proofs
# as random as real ones). Measured 2026-12-04: 1,823 before the lines were packed and
# the ids hashed (commit 563b3f8), 543 after (docs/performance.md has the figures at
# a million lines).
BYTES_PER_LINE = 650


def _realistic_lines(template: dict, count: int) -> list[str]:
    """``count`` lines like ``template``, with ids, hashes and an S3 proof as random as real
    ones (what a packed line cannot shrink)."""
    lines = []
    for i in range(count):
        digest = hashlib.sha256(i.to_bytes(8, "big")).digest()
        sip = hashlib.md5(digest).hexdigest()  # noqa: S324 - an id's shape
        line = {
            **template,
            "sip_call_id": f"{sip}@10.0.0.1",
            "cdr_id": str(uuid.UUID(bytes=digest[:16])),
            "object_key": f"recordings/2021/02/17/{sip}@10.0.0.1.wav",
            "sha256": digest.hex(),
            "etag": hashlib.md5(digest[::-1]).hexdigest(),  # noqa: S324
            "checksum_sha256": base64.b64encode(digest).decode(),
            "checksum_type": "FULL_OBJECT",
            "from_number": f"09{i % 100_000_000:08d}",
            "billsec": i % 600,
        }
        lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    return lines


async def test_the_index_keeps_a_line_in_few_bytes(local_archive, tmp_path):
    template = json.loads(_manifests(Path(local_archive.local_path))[0].read_text().split("\n")[0])
    archive = tmp_path / "realistic"
    lines = _realistic_lines(template, 3000)
    for batch in range(3):
        path = archive / f"manifests/date=2021-02-17/{batch:012d}-bench.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines[batch * 1000 : (batch + 1) * 1000]) + "\n")
    empty = tmp_path / "empty.sqlite3"
    IndexDatabase(empty, SCHEMA).close()
    async with open_store(StorageSettings(url=str(archive))) as store:
        db = IndexDatabase(tmp_path / "index.sqlite3", SCHEMA)
        index = CallIndex(db)
        built = await index.refresh(store)
        assert (built.lines, await index.count()) == (3000, 3000)
        # Every call found back whole, by its id, from the packed line.
        for raw in lines[::301]:
            fields = json.loads(raw)
            found, total = await index.search(CallQuery(ident=fields["sip_call_id"]), 0, 5)
            assert total == 1
            assert dict(found[0].call.fields) == fields
        await db.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.close()
    grown = (tmp_path / "index.sqlite3").stat().st_size - empty.stat().st_size
    assert grown / 3000 < BYTES_PER_LINE


async def test_a_build_cut_short_is_begun_again_and_an_old_layout_is_rebuilt(
    local_archive, tmp_path
):
    from archiver.console import loading
    from archiver.console.tables import drop_calls, outdated

    path = tmp_path / "index.sqlite3"
    async with open_store(local_archive) as store:
        calls = await manifest_calls(store)
        # A build from nothing that stopped after its first object (a crash): calls in
        # the file, their terms lost with the TEMP table.
        db = IndexDatabase(path, SCHEMA)
        assert await db.run(loading.start_bulk)
        first = _manifests(Path(local_archive.local_path))[0]
        key = str(first.relative_to(local_archive.local_path))
        await db.run(
            lambda c: loading.store(c, [loading.prepare(key, first.read_bytes())], bulk=True)
        )
        db.close()
        index = CallIndex(IndexDatabase(path, SCHEMA))
        await index.refresh(store)
        assert await index.count() == len(calls)
        cut = json.loads(first.read_text().splitlines()[0])
        found, _ = await index.search(CallQuery(phone=cut["from_number"]), 0, 1000)
        # Its terms are there: the build was begun again.
        assert cut["cdr_id"] in {item.call.cdr_id for item in found}
        index.db.close()

    # A file of the earlier layout: its call tables go, a saved search stays.
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as conn:
        conn.executescript(
            "CREATE TABLE calls (id INTEGER PRIMARY KEY, line TEXT, customer TEXT);"
            "INSERT INTO calls (line) VALUES ('{}');"
            "CREATE TABLE saved_searches (user TEXT, name TEXT, query TEXT, "
            "PRIMARY KEY (user, name));"
            "INSERT INTO saved_searches VALUES ('ann', 'mine', 'phone=1');"
        )
    conn.close()
    assert outdated(old)
    drop_calls(old)
    db = IndexDatabase(old, SCHEMA)
    assert not outdated(old)
    saved = await db.run(lambda c: c.execute("SELECT name FROM saved_searches").fetchall())
    assert saved == [("mine",)]
    assert await CallIndex(db).count() == 0
    db.close()
