"""What the S3 client puts on the wire: a recording's bytes as given, not a copy read back
in pieces (botocore's BytesIO wrapping, kept only above what aiohttp sends in one write)."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

from archiver.storage import open_store
from tests.support.seaweed import MakeBucket, S3Settings


async def test_a_body_aiohttp_sends_in_one_write_stays_bytes_and_everything_is_stored(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket()
    sent: list[tuple[str, type]] = []

    def spy(request: Any, event_name: str, **_: Any) -> None:
        sent.append((event_name.rsplit(".", 1)[-1], type(request.body)))

    small, large, part = (os.urandom(n * 1024) for n in (300, 2048, 5 * 1024))
    # The full client's own path (the lean PUT, s3_lean, sends small bodies as bytes too;
    # tests/integration/test_s3_lean.py).
    async with open_store(s3_settings(bucket, lean_put=False)) as store:
        store.client.meta.events.register("before-send.s3", spy)
        for key, data in (("r/small.wav", small), ("r/large.wav", large)):
            digest = hashlib.sha256(data).hexdigest()
            await store.put_bytes(key, data, sha256=digest, content_type="audio/wav")
        upload = await store.start_upload("r/big.wav", content_type="audio/wav")
        await upload.write_part(part)
        await upload.complete(hashlib.sha256(part).hexdigest(), len(part))
        for key, data in (("r/small.wav", small), ("r/large.wav", large), ("r/big.wav", part)):
            assert b"".join([c async for c in store.read(key)]) == data
    puts = [kind for operation, kind in sent if operation == "PutObject"]
    assert puts == [bytes, io.BytesIO]  # 300 KiB as given; 2 MiB wrapped (aiohttp's advice)
    assert [kind for operation, kind in sent if operation == "UploadPart"] == [io.BytesIO]
