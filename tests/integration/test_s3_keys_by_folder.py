"""S3's keys-only listing by folder (``archiver.storage.s3_listing.list_keys_by_folder``,
``S3Store.list_keys``, what ``get``'s cold index lists ``manifests/`` with) on SeaweedFS:
every key a plain listing of the prefix lists, once each, in the same order where the
names leave no doubt, for trees with objects right under the prefix, nested folders,
names beside a folder's (``a.jsonl`` and ``a/``), many more folders than are listed at
once and folders of several pages; a folder whose listing fails raises the storage's
error and leaves no listing task running; a listing let go half-way stops its tasks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from archiver.errors import StorageError
from archiver.storage import open_store
from archiver.storage.base import listed_keys
from archiver.storage.s3 import S3Store
from archiver.storage.s3_listing import list_keys_by_folder
from tests.support.seaweed import MakeBucket, S3Settings


@pytest.fixture
async def store(make_bucket: MakeBucket, s3_settings: S3Settings) -> AsyncIterator[S3Store]:
    async with open_store(s3_settings(await make_bucket())) as opened:
        assert isinstance(opened, S3Store)
        yield opened


async def _put(store: S3Store, keys: list[str]) -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(key: str) -> None:
        async with semaphore:
            await store.client.put_object(Bucket=store.bucket, Key=store.full_key(key), Body=b"")

    await asyncio.gather(*(one(key) for key in keys))


def _tree(rng: random.Random) -> list[str]:
    keys = ["m/a.jsonl", "m/a/1.jsonl", "m/a-b/2.jsonl", "m/top.jsonl", "m/z", "n/other.jsonl"]
    for day in range(23):
        folder = f"m/date=2021-01-{day + 1:02}/"
        keys += [
            f"{folder}{seq:012}-w1.jsonl" for seq in rng.sample(range(1000), rng.randint(0, 9))
        ]
    keys += [f"m/deep/x/{n}.jsonl" for n in range(7)] + ["m/date=2021-01-03.jsonl"]
    return keys


async def _keys(listing: AsyncIterator[str]) -> list[str]:
    return [key async for key in listing]


@pytest.mark.parametrize("at_once", [1, 3, 8])
async def test_every_key_once_as_the_plain_listing_lists_them(store: S3Store, at_once: int) -> None:
    keys = _tree(random.Random(at_once))
    await _put(store, keys)
    for prefix in ("m/", "m", "m/date=2021-01-0", "m/deep/", "absent/", ""):
        plain = [obj.key async for obj in store.list(prefix)]
        by_folder = await _keys(list_keys_by_folder(store, prefix, at_once, page_size=3))
        assert sorted(by_folder) == sorted(plain) == sorted(k for k in keys if k.startswith(prefix))
        assert len(set(by_folder)) == len(by_folder)
        # Where no name sits beside a folder's, the order is the plain listing's too.
        if prefix in ("m/deep/", "m/date=2021-01-0"):
            assert by_folder == plain
    # listed_keys goes through it (the class's own keys-only listing).
    assert sorted(await _keys(listed_keys(store, "m/"))) == sorted(k for k in keys if k[:2] == "m/")


async def test_a_folder_that_fails_to_list_raises_and_leaves_no_task(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _put(store, [f"m/f{n}/k.jsonl" for n in range(6)])
    real = store.client.get_paginator

    def failing(name: str) -> Any:
        paginator = real(name)
        paginate = paginator.paginate

        def pages(**kwargs: Any) -> Any:
            if kwargs.get("Prefix", "").endswith("m/f3/"):
                raise StorageError("s3://bucket: cannot list m/f3/: the storage is away")
            return paginate(**kwargs)

        paginator.paginate = pages
        return paginator

    monkeypatch.setattr(store.client, "get_paginator", failing)
    before = asyncio.all_tasks()
    with pytest.raises(StorageError, match="cannot list m/f3/"):
        await _keys(list_keys_by_folder(store, "m/", 2))
    await asyncio.sleep(0)  # the cancelled tasks end
    assert {t for t in asyncio.all_tasks() if not t.done()} <= before


async def test_a_listing_let_go_half_way_stops_its_tasks(store: S3Store) -> None:
    await _put(store, [f"m/f{n}/{k}.jsonl" for n in range(10) for k in range(5)])
    before = asyncio.all_tasks()
    listing = list_keys_by_folder(store, "m/", 4, page_size=2)
    first = [await anext(listing) for _ in range(7)]
    assert first == sorted(first)
    await listing.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if not t.done()} <= before
