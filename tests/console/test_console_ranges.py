"""Seeking reads from the asked byte on both stores: an S3 Range request, a file seek."""

from __future__ import annotations

import hashlib
import os

import pytest

from archiver.console.media import byte_range
from archiver.settings import StorageSettings
from archiver.storage import open_store

DATA = os.urandom(300_000)


@pytest.fixture(params=["local", "s3"])
async def storage(request, tmp_path, make_bucket, s3_settings) -> StorageSettings:
    if request.param == "local":
        return StorageSettings(url=str(tmp_path / "archive"))
    return s3_settings(await make_bucket())


async def test_reads_start_where_asked(storage):
    async with open_store(storage) as store:
        await store.put_bytes(
            "recordings/a.wav",
            DATA,
            sha256=hashlib.sha256(DATA).hexdigest(),
            content_type="audio/wav",
        )
        for start in (0, 1, 65_536, 299_999):
            chunks = [c async for c in store.read("recordings/a.wav", 65_536, start=start)]
            assert b"".join(chunks) == DATA[start:]
        for first, last in ((0, 0), (5, 99), (100_000, 299_999), (299_999, 299_999), (0, 299_999)):
            got = b"".join([c async for c in byte_range(store, "recordings/a.wav", first, last)])
            assert got == DATA[first : last + 1], (first, last)
