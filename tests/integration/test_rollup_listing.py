"""``archiver rollup`` (and ``run``'s leader) list a writer's chain folder only after the
link its last rollup ends at, not the whole folder (711,090 links at 5 million calls,
each time): a second pass lists the head and nothing it covered, writes nothing, and
finds a missing head as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from archiver.manifest.rollup_write import ChainBreak, RollupWriter
from archiver.settings import StorageSettings
from archiver.storage import open_store
from archiver.storage.layout import CHAIN_PREFIX, head_key, link_key
from tests.support.pipeline import backfilled_writer


class _Listings:
    """The store, recording each listing (prefix, start_after) and the keys it gave."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.listed: list[tuple[str, str, list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list(self, prefix: str, *, start_after: str = "") -> AsyncIterator[Any]:
        keys: list[str] = []
        self.listed.append((prefix, start_after, keys))
        async for obj in self._store.list(prefix, start_after=start_after):
            keys.append(obj.key)
            yield obj


async def _archive(tmp_path: Path) -> tuple[StorageSettings, str]:
    storage, writer, _ = await backfilled_writer(tmp_path, calls=12, max_size=8_000)
    return storage, writer


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_second_pass_lists_only_after_the_last_rollup(tmp_path: Path) -> None:
    storage, writer = await _archive(tmp_path)
    async with open_store(storage) as store:
        first = await RollupWriter(store, writer, now=_now, max_objects=2).run()
        assert len(first.records) >= 3
        end = first.records[-1].last_seq
        watched = _Listings(store)
        again = await RollupWriter(watched, writer, now=_now, max_objects=2).run()  # type: ignore[arg-type]
    assert again.records == []
    (chain,) = [
        (after, keys) for prefix, after, keys in watched.listed if prefix.startswith(CHAIN_PREFIX)
    ]
    after, keys = chain
    assert after == link_key(writer, end)
    assert keys == [head_key(writer)]  # every link is covered: only the head is listed


async def test_a_missing_head_after_every_link_is_rolled_up_is_a_break(tmp_path: Path) -> None:
    storage, writer = await _archive(tmp_path)
    async with open_store(storage) as store:
        await RollupWriter(store, writer, now=_now, max_objects=2).run()
    (tmp_path / "archive" / head_key(writer)).unlink()
    async with open_store(storage) as store:
        with pytest.raises(ChainBreak, match="the chain head is missing"):
            await RollupWriter(store, writer, now=_now, max_objects=2).run()


async def test_the_writers_are_found_one_listing_each(tmp_path: Path) -> None:
    """Writers whose names sort around ``/`` and ``0``, a file beside a folder, tokens: every
    folder once, in key order, with one listing per writer (and one to find the end)."""
    from archiver.manifest.rollup_walk import manifest_writers

    root = tmp_path / "archive"
    names = ["w1-2/000000000001.json", "w1/000000000001.json", "w1/000000000001.tsr",
             "w1/head.json", "w1.json", "w10/head.json", "w2/000000000003.json"]  # fmt: skip
    for name in names:
        (root / CHAIN_PREFIX / name).parent.mkdir(parents=True, exist_ok=True)
        (root / CHAIN_PREFIX / name).write_bytes(b"{}")
    async with open_store(StorageSettings(url=str(root))) as store:
        watched = _Listings(store)
        found = await manifest_writers(watched)  # type: ignore[arg-type]
    assert found == ["w1-2", "w1.json", "w1", "w10", "w2"]
    assert len(watched.listed) == len(found) + 1
    assert all(len(keys) <= 1 for _, _, keys in watched.listed)  # a key each, not a folder


async def test_a_folder_marker_hides_no_writer(make_bucket: Any, s3_settings: Any) -> None:
    """On S3: an object at ``_archiver/chain/`` itself (the folder marker an S3 console makes),
    listed first: the writers after it are still found."""
    from archiver.manifest.rollup_walk import manifest_writers

    async with open_store(s3_settings(await make_bucket())) as store:
        for key in ("", "w1/head.json", "w2/000000000001.json"):
            full = store.prefix + CHAIN_PREFIX + key
            await store.client.put_object(Bucket=store.bucket, Key=full, Body=b"")
        first = [obj.key async for obj in store.list(CHAIN_PREFIX)][0]
        assert first == CHAIN_PREFIX  # the marker is listed, first
        assert await manifest_writers(store) == ["w1", "w2"]
