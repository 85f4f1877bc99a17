"""Every network wait is bounded on both sides (issue 22): a storage that accepts an
upload and never reads it, and a provider that trickles its answer a byte at a
time, each cost one whole-request deadline, then an error the caller retries.

On the code before issue 22 both tests hang: aiohttp's sock_read timer starts
only once the body is written (the upload waited for the transfer's 30-minute
deadline), and a trickle resets sock_read with every byte (no total deadline).
``asyncio.timeout`` below only turns such a hang into a failure instead of the
suite's own timeout; it is no timing of the code.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiohttp import web

from archiver.errors import RetriableError, StorageError
from archiver.http import ApiClient, make_session
from archiver.settings import SourceSettings
from archiver.storage import PutOutcome, open_store
from tests.support.faultproxy import FaultProxy
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer
from tests.support.web import serve

# Larger than the loopback socket buffers: the write itself blocks on a hung peer.
BIG = 12 * 1024 * 1024
HANG_GUARD = 60.0


async def test_a_hung_storage_fails_an_upload_within_its_deadline_then_it_works(
    make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
):
    bucket = await make_bucket()
    data = b"\x01" * BIG
    sha = hashlib.sha256(data).hexdigest()
    proxy = FaultProxy(seaweed.endpoint_url, requests=False)
    async with proxy.serve() as endpoint:
        settings = s3_settings(
            bucket,
            endpoint_url=endpoint,
            connect_timeout=1,
            read_timeout=1,
            # A whole-request deadline of 2 + 12 MiB at 64 KiB/s = 194 s: the
            # stalled body must end the attempt long before, at the read timeout.
            min_throughput=64 * 1024,
            buffer_bound=16 * 1024 * 1024,
        )
        async with open_store(settings, max_attempts=2) as store:
            await proxy.add_toxic("hung", "hang")
            async with asyncio.timeout(HANG_GUARD):
                with pytest.raises(StorageError, match="timeout"):
                    await store.put_bytes(
                        "recordings/big.wav", data, sha256=sha, content_type="audio/wav"
                    )
            assert proxy.hung_connections() >= 2, "each attempt met the hang"
            await proxy.remove_toxic("hung")
            # The connections caught in the hang stay hung: the retry must use a new one.
            written = await store.put_bytes(
                "recordings/big.wav", data, sha256=sha, content_type="audio/wav"
            )
            assert written.outcome is PutOutcome.CREATED


async def test_a_provider_trickling_its_answer_is_cut_at_the_request_deadline():
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        body = b'{"data": []}' + b" " * 200
        for byte in body:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.1)  # the server's trickle: one byte every 0.1 s
        return response

    async with serve({"/api": trickle}) as server:
        settings = SourceSettings(read_timeout=5, request_timeout=1, max_attempts=1, rate_limit=0)
        async with make_session(settings) as session:
            client = ApiClient(session, settings)
            async with asyncio.timeout(HANG_GUARD):
                with pytest.raises(RetriableError, match="timed out"):
                    await client.request_json("GET", f"{server.url}/api")
