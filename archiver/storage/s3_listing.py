"""Listings of an :class:`~archiver.storage.s3.S3Store`: every key under a prefix, and the
"folders" right under one (a delimiter listing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
