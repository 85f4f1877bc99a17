"""Listings of an :class:`~archiver.storage.s3.S3Store`: every key under a prefix, and the
"folders" right under one (a delimiter listing)."""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

from archiver.storage.base import StoredObject
from archiver.storage.s3_proof import listed_object

if TYPE_CHECKING:
    from archiver.storage.s3 import S3Store


async def list_objects(
    store: S3Store, prefix: str, start_after: str = ""
) -> AsyncIterator[StoredObject]:
    """ListObjectsV2 under the prefix (after ``start_after``), in UTF-8 byte order.

    SeaweedFS lists a "folder" before sibling names that sort first (``a/1`` before
    ``a.txt``): callers needing strict key order across such siblings must sort."""
    after = {"StartAfter": store.prefix + start_after} if start_after else {}
    paginate = store.client.get_paginator("list_objects_v2").paginate
    with store.errors(f"list {prefix or 'objects'}"):
        async for page in paginate(Bucket=store.bucket, Prefix=store.prefix + prefix, **after):
            for item in page.get("Contents", []):
                yield listed_object(item, store.prefix)


async def list_folders(store: S3Store, prefix: str) -> list[str]:
    """The names right under ``prefix`` that some key continues with ``/`` (its common
    prefixes with ``Delimiter="/"``: a page per 1,000 names, not one per 1,000 keys)."""
    under = store.prefix + prefix
    paginate = store.client.get_paginator("list_objects_v2").paginate
    with store.errors(f"list {prefix}"):
        pages = paginate(Bucket=store.bucket, Prefix=under, Delimiter="/")
        return [
            str(item["Prefix"])[len(under) :].rstrip("/")
            async for page in pages
            for item in page.get("CommonPrefixes", [])
        ]


# Folders listed at once by list_keys_by_folder, and the entries read ahead of the one
# being yielded (a bound on memory whatever the folder holds).
FOLDERS_AT_ONCE = 8
_AHEAD = 10_000
_End = None


async def _level(
    store: S3Store, prefix: str, page_size: int
) -> AsyncGenerator[tuple[str, bool], None]:
    """(key, False) of each object right under ``prefix`` and (folder key ending in ``/``,
    True) of each folder, in key order: a delimiter listing's contents and common
    prefixes, merged page by page."""
    cut = len(store.prefix)
    paginate = store.client.get_paginator("list_objects_v2").paginate
    with store.errors(f"list {prefix or 'objects'}"):
        pages = paginate(
            Bucket=store.bucket,
            Prefix=store.prefix + prefix,
            Delimiter="/",
            PaginationConfig={"PageSize": page_size},
        )
        async with aclosing(aiter(pages)) as paged:  # closed, not left to the loop, if let go
            async for page in paged:
                files = [(str(i["Key"])[cut:], False) for i in page.get("Contents", [])]
                folders = [(str(i["Prefix"])[cut:], True) for i in page.get("CommonPrefixes", [])]
                for entry in heapq.merge(files, folders):
                    yield entry


# A folder's pages, then None at its end (or the error that stopped its listing).
_Pages = asyncio.Queue[list[str] | BaseException | None]


async def _fill(store: S3Store, folder: str, queue: _Pages, page_size: int) -> None:
    """Every key under ``folder``, a page at a time into ``queue`` (then None, or the error)."""
    cut = len(store.prefix)
    try:
        paginate = store.client.get_paginator("list_objects_v2").paginate
        with store.errors(f"list {folder}"):
            pages = paginate(
                Bucket=store.bucket,
                Prefix=store.prefix + folder,
                PaginationConfig={"PageSize": page_size},
            )
            async with aclosing(aiter(pages)) as paged:
                async for page in paged:
                    await queue.put([str(i["Key"])[cut:] for i in page.get("Contents", [])])
        await queue.put(_End)
    except Exception as exc:  # noqa: BLE001 - the reader raises it, in the folder's place
        await queue.put(exc)


async def list_keys_by_folder(
    store: S3Store, prefix: str, folders_at_once: int = FOLDERS_AT_ONCE, page_size: int = 1000
) -> AsyncIterator[str]:
    """The keys under ``prefix``, a folder right under it at a time in key order, each
    folder listed by a request chain of its own, up to ``folders_at_once`` at once.

    One listing of 1.2 million manifest keys is 1,202 requests one after the other (on a
    distant S3 at 50 ms each, a minute); in date folders they go ``folders_at_once`` at
    a time, for one more request per folder and one delimiter listing. The objects right
    under ``prefix`` (in no folder) are listed too: everything a listing of ``prefix``
    lists. At most ``_AHEAD`` entries and two pages per folder are held ahead."""
    ahead: deque[tuple[str, _Pages | None, asyncio.Task[None] | None]] = deque()
    tasks: set[asyncio.Task[None]] = set()  # the folders being listed (cancelled if let go)
    entries = _level(store, prefix, page_size)
    more = True
    try:
        while True:
            while more and len(tasks) < folders_at_once and len(ahead) < _AHEAD:
                entry = await anext(entries, None)
                if entry is None:
                    more = False
                    break
                key, is_folder = entry
                if not is_folder:
                    ahead.append((key, None, None))
                    continue
                filling: _Pages = asyncio.Queue(maxsize=2)
                task = asyncio.create_task(_fill(store, key, filling, page_size))
                tasks.add(task)
                ahead.append((key, filling, task))
            if not ahead:
                return
            key, pages, listing = ahead.popleft()
            if pages is None or listing is None:
                yield key
                continue
            while (page := await pages.get()) is not _End:
                if isinstance(page, BaseException):
                    raise page
                for listed in page:
                    yield listed
            tasks.discard(listing)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # ended, not just asked to
        await entries.aclose()
