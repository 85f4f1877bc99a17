"""Verify's listing of manifest objects on its scratch file: what the list gave, in key
order, a page at a time; those read from a rollup's lines are left out of the rest."""

from __future__ import annotations

import hashlib
from pathlib import Path

from archiver.manifest.reader import list_manifests
from archiver.retrieval.manifest_listing import ListedManifests, list_into
from archiver.retrieval.scratch import open_scratch
from archiver.storage.base import ObjectProof, StoredObject
from archiver.storage.local import LocalStore

UTC = __import__("datetime").UTC


def _obj(n: int) -> StoredObject:
    key = f"manifests/date=2026-12-{n % 28 + 1:02d}/{n:012d}-w1.jsonl"
    etag = f"{n:032x}" if n % 3 else None
    return StoredObject(key, f"bucket/{key}", 100 + n, sha256="ab" * 32, proof=ObjectProof(etag))


def _kept(obj: StoredObject) -> tuple[str, str, int, str | None]:
    return obj.key, obj.full_key, obj.size, obj.proof.etag


def test_it_gives_back_the_listing_in_key_order_across_pages(tmp_path: Path) -> None:
    objects = [_obj(n) for n in range(2600)]
    with open_scratch(tmp_path, "verify") as db:
        listed = ListedManifests.of(db, reversed(objects))
        assert len(listed) == 2600
        assert [_kept(o) for o in listed] == sorted(_kept(o) for o in objects)
        assert objects[5] in listed
        assert objects[5].key in listed
        assert "manifests/none.jsonl" not in listed
        some = objects[1234]
        assert _kept(listed.get(some.key) or _obj(0)) == _kept(some)
        done = {o.key for o in objects[::7]}
        for key in done:
            listed.done(key)
        assert listed.get(objects[0].key) is None  # done: the rest no longer holds it
        assert [o.key for o in listed.left()] == sorted({o.key for o in objects} - done)
        assert len(list(listed)) == 2600  # the listing itself is unchanged


def test_an_empty_listing_is_empty(tmp_path: Path) -> None:
    with open_scratch(tmp_path, "verify") as db:
        listed = ListedManifests.of(db, [])
        assert len(listed) == 0
        assert not listed
        assert list(listed) == []


async def _put(store: LocalStore, key: str, data: bytes) -> None:
    await store.put_bytes(key, data, sha256=hashlib.sha256(data).hexdigest(), content_type="x/y")


async def test_list_into_lists_what_list_manifests_lists(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    for n in (3, 1, 2, 30):
        await _put(store, _obj(n).key, b"x" * n)
    await _put(store, "manifests/stray.jsonl", b"x")  # in no partition: not listed
    expected = await list_manifests(store, None, None, UTC)
    with open_scratch(tmp_path, "verify") as db:
        listed = await list_into(db, store, None, None, UTC)
        assert [(o.key, o.size) for o in listed] == [(o.key, o.size) for o in expected]
        assert len(listed) == len(expected) == 4
