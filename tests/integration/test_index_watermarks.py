"""``get``'s id index brought up to date by per-writer watermarks (a real directory, a real
SQLite file; the folders' listing also on SeaweedFS): the chain's new links are listed, not
every manifest key; an object written into an old day is found through its link; an object
beside the chain waits for the full listing, which a miss, the listing's age or another
storage brings at once; and the links kept by earlier walks are read a page at a time."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.commands.finding import locate
from archiver.index_db import IndexDatabase
from archiver.manifest.chain import next_link, sha256_hex
from archiver.manifest.writer import advance_head, append_chained
from archiver.retrieval import index_refresh, proven_links
from archiver.retrieval.errors import IntegrityError, IntegrityKind
from archiver.retrieval.local_index import SCHEMA, IdIndex
from archiver.retrieval.proof import ChainProver
from archiver.settings import StorageSettings
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.storage.layout import link_key, manifest_key
from tests.support.counting import Counting

WRITER = "w00000000000000a1"
DAY = timedelta(hours=24)


def _line(n: int) -> dict[str, Any]:
    return {
        "sip_call_id": f"sip-{n}@pbx",
        "cdr_id": f"c-{n}",
        "provider": "cdr_v2",
        "object_key": f"recordings/{n}.wav",
        "sha256": f"{n:064x}",
        "size": 10,
    }


class _Chain:
    """One writer's chain, written through the archiver's own chained writes."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.seq = 0
        self.previous: tuple[int, str] | None = None

    async def batch(self, day: str, *numbers: int) -> str:
        self.seq += 1
        key = manifest_key(day, self.seq, WRITER)
        content = b"".join(json.dumps(_line(n)).encode() + b"\n" for n in numbers)
        self.previous = await append_chained(
            self.store, WRITER, self.seq, key, content, len(numbers), self.previous
        )
        return key


async def _update(index: Path, store: Any, **kwargs: Any) -> bool:
    db = IndexDatabase(index, SCHEMA)
    try:
        return await index_refresh.update(IdIndex(db), store, full_after=DAY, **kwargs)
    finally:
        db.close()


async def _holders(index: Path, ident: str) -> list[str]:
    db = IndexDatabase(index, SCHEMA)
    try:
        return await IdIndex(db).manifests_of(ident)
    finally:
        db.close()


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[tuple[ObjectStore, _Chain]]:
    async with open_store(StorageSettings(url=str(tmp_path / "archive"))) as store:
        chain = _Chain(store)
        await chain.batch("2021-01-01", 1, 2)
        await chain.batch("2021-01-02", 3, 4)
        yield store, chain


async def test_a_warm_update_lists_the_new_links_not_every_manifest_key(archive, tmp_path):
    store, chain = archive
    index = tmp_path / "index.sqlite3"
    assert await _update(index, store) is True  # a cold index lists everything
    counting = Counting(store)
    assert await _update(index, counting) is False
    # The rollups, the writer's head: no listing of its links, of manifests/, no other read.
    assert counting.listed == ["_archiver/rollups/"]
    assert counting.reads == [f"_archiver/chain/{WRITER}/head.json"]

    today = datetime.now(UTC).date()
    new = await chain.batch(today.isoformat(), 5)
    counting = Counting(store)
    assert await _update(index, counting) is False
    assert "manifests/" not in counting.listed
    days = [today + timedelta(days=d) for d in (-1, 0, 1)]
    assert [p for p in counting.listed if p.startswith("manifests/")] == [
        f"manifests/date={d.isoformat()}/" for d in days
    ]
    # Matched by its key: the link itself is not read.
    assert counting.reads == [f"_archiver/chain/{WRITER}/head.json", new]
    assert await _holders(index, "c-5") == [new]


async def test_a_batch_written_into_an_old_day_is_found_through_its_link(archive, tmp_path):
    store, chain = archive
    index = tmp_path / "index.sqlite3"
    await _update(index, store)
    old = await chain.batch("2020-06-30", 6)  # a backfill of an old day
    counting = Counting(store)
    assert await _update(index, counting) is False
    assert f"_archiver/chain/{WRITER}/{chain.seq:012d}.json" in counting.reads
    assert await _holders(index, "sip-6@pbx") == [old]
    found = await locate(store, index, "c-6")
    assert (found.call.manifest_key, found.refused) == (old, [])


async def test_a_line_beside_the_chain_waits_for_the_full_listing_and_is_never_served(
    archive, tmp_path
):
    store, _ = archive
    index = tmp_path / "index.sqlite3"
    real = await locate(store, index, "c-1")  # the index is warm from here on
    forged_key = "manifests/date=2021-01-01/000000000900-wforger00000001.jsonl"
    forged = {**_line(1), "sip_call_id": "forged@pbx", "sha256": "f" * 64}
    path = Path(store.description) / forged_key
    path.write_bytes(json.dumps(forged).encode() + b"\n")

    # The contract: a warm index serves the genuine call without naming the forgery...
    again = await locate(store, index, "c-1")
    assert (again.call.sha256, again.refused) == (real.call.sha256, [])
    # ...an id found only in it is looked for in a full listing, and refused...
    with pytest.raises(IntegrityError, match=forged_key) as refused:
        await locate(store, index, "forged@pbx")
    assert refused.value.kind is IntegrityKind.OUT_OF_CHAIN
    # ...and once listed, it is named beside the genuine call.
    named = await locate(store, index, "c-1")
    assert named.call.sha256 == real.call.sha256
    assert any(forged_key in why for why in named.refused)


async def test_the_full_listing_comes_back_with_age_and_for_another_storage(archive, tmp_path):
    store, _ = archive
    index = tmp_path / "index.sqlite3"
    now = datetime.now(UTC)
    assert await _update(index, store, now=now) is True
    assert await _update(index, store, now=now + DAY - timedelta(minutes=1)) is False
    assert await _update(index, store, now=now + DAY + timedelta(minutes=1)) is True
    assert await _update(index, store, now=now - timedelta(hours=1)) is True  # clock went back
    assert await _update(index, store, full=True) is True
    copy = tmp_path / "copy"
    shutil.copytree(store.description, copy)
    async with open_store(StorageSettings(url=str(copy))) as other:
        assert await _update(index, other) is True  # the watermarks are the other storage's
        assert await _update(index, other) is False


async def test_kept_links_are_read_as_the_walk_needs_them(archive, tmp_path):
    store, chain = archive
    for n in range(7, 12):
        await chain.batch("2021-01-03", n)
    index = tmp_path / "index.sqlite3"
    oldest = manifest_key("2021-01-01", 1, WRITER)
    content = (Path(store.description) / oldest).read_bytes()
    first = ChainProver(store)
    await first.prove(oldest, content)
    await proven_links.save(index, first.added())

    kept = proven_links.KeptLinks(index)
    try:
        assert len(kept) == len(first.added()) == chain.seq - 1
        assert dict(kept.items()) == first.added()
        counting = Counting(store)
        await ChainProver(counting, kept).prove(oldest, content)
        # The head and the object's own link: every link between came from the file.
        assert sorted(counting.reads) == [
            f"_archiver/chain/{WRITER}/000000000001.json",
            f"_archiver/chain/{WRITER}/head.json",
        ]
        assert (WRITER, 10**9) not in kept
    finally:
        kept.close()
    # A row the chain does not record is never taken: that link is read again.
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE proven_links SET sha256 = ? WHERE seq = 3", ("0" * 64,))
    kept = proven_links.KeptLinks(index)
    try:
        assert kept[(WRITER, 3)].sha256 == "0" * 64
        counting = Counting(store)
        await ChainProver(counting, kept).prove(oldest, content)
        assert f"_archiver/chain/{WRITER}/000000000003.json" in counting.reads
    finally:
        kept.close()


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_the_folders_under_a_prefix_in_one_listing(kind, tmp_path, make_bucket, s3_settings):
    if kind == "s3":
        settings = s3_settings(await make_bucket(), "pre/fix")
    else:
        settings = StorageSettings(url=str(tmp_path / "archive"))
    async with open_store(settings) as store:
        for key in ("a/w1/1.json", "a/w1/2.json", "a/w2/x/1.json", "a/top.json", "b/w3/1.json"):
            await store.put_bytes(key, b"{}", sha256=sha256_hex(b"{}"), content_type="text/json")
        assert list(await store.list_folders("a/")) == ["w1", "w2"]
        assert list(await store.list_folders("a/w2/")) == ["x"]
        assert list(await store.list_folders("none/")) == []
        if kind == "local":  # typed by extension, as S3 is told when they are written
            listed = [o.content_type async for o in store.list("a/w1/")]
            assert listed == ["application/json"] * 2


async def test_a_link_past_its_head_is_taken_once_the_head_moves_over_it(archive, tmp_path):
    store, chain = archive
    index = tmp_path / "index.sqlite3"
    await _update(index, store)
    chain.seq += 1
    key = manifest_key("2021-01-05", chain.seq, WRITER)
    content = json.dumps(_line(8)).encode() + b"\n"
    link = next_link(WRITER, chain.seq, key, content, 1, chain.previous).to_bytes()
    for where, data in ((key, content), (link_key(WRITER, chain.seq), link)):
        await store.put_bytes(where, data, sha256=sha256_hex(data), content_type="x/y")
    assert await _update(index, store) is False
    assert await _holders(index, "c-8") == []  # a line there would be refused as cut
    await advance_head(store, link)
    assert await _update(index, store) is False
    assert await _holders(index, "c-8") == [key]
