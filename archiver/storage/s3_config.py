"""The S3 client's configuration, and a whole-request deadline on every attempt of
every S3 request (aiobotocore).

botocore's ``connect_timeout`` and ``read_timeout`` become aiohttp's
``sock_connect`` and ``sock_read``; aiohttp starts the read timer only once
the request's body is written. A storage that accepts a connection and then
reads nothing (a hung load balancer, a silent partition) blocks the body's
write once the socket buffers are full, and nothing ends it: a PutObject or
an UploadPart of a few megabytes stayed stuck until the transfer's own
30-minute deadline.

Each attempt therefore gets two more bounds: while its body is sent, the body
must move (no ``read_timeout`` seconds without a byte taken: a stalled upload
ends as soon as a silent answer would); and in all, the connect and read
timeouts plus the body's size at a minimum throughput (a large part may be
slow, not endless). Past either, the attempt ends as botocore's
``ReadTimeoutError``, which botocore retries like any other timeout: a hung
endpoint costs one timeout and a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import ReadTimeoutError

from archiver.settings import StorageSettings


def attempt_deadline(
    content_length: int, *, connect: float, read: float, min_throughput: int
) -> float:
    """Seconds one attempt may take in all: both timeouts plus the body at the minimum rate."""
    return connect + read + max(content_length, 0) / min_throughput


def _content_length(request: Any) -> int:
    value = request.headers.get("Content-Length")
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def deadline_session(*, connect: float, read: float, min_throughput: int) -> type[AIOHTTPSession]:
    """An aiobotocore HTTP session class (``AioConfig(http_session_cls=...)``) whose
    every ``send`` is bounded by :func:`attempt_deadline`."""

    class DeadlineSession(AIOHTTPSession):  # type: ignore[misc]
        """aiobotocore's aiohttp session, each attempt under a whole-request deadline."""

        async def send(self, request: Any) -> Any:
            """Send one attempt; a ReadTimeoutError (retried by botocore) past its deadline."""
            limit = attempt_deadline(
                _content_length(request),
                connect=connect,
                read=read,
                min_throughput=min_throughput,
            )
            sending = asyncio.ensure_future(super().send(request))
            try:
                async with asyncio.timeout(limit):
                    return await _unless_stalled(sending, request.body, stall=read)
            except TimeoutError as exc:
                raise ReadTimeoutError(endpoint_url=request.url, error=exc) from None
            finally:
                if not sending.done():
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await sending

    return DeadlineSession


async def _unless_stalled(sending: asyncio.Future[Any], body: object, *, stall: float) -> Any:
    """``sending``'s result; TimeoutError once a file-like body has not moved for
    ``stall`` seconds (aiohttp reads it a chunk at a time as the socket takes it,
    so its position is the upload's progress; past its end, the wait for the
    answer is what sock_read bounds as well)."""
    if not (isinstance(body, io.IOBase) and body.seekable()):
        return await sending
    loop = asyncio.get_running_loop()
    moved_at, position = loop.time(), -1
    while True:
        done, _ = await asyncio.wait({sending}, timeout=min(1.0, stall / 4))
        if done:
            return sending.result()
        now, at = loop.time(), body.tell()
        if at != position:
            moved_at, position = now, at
        elif now - moved_at > stall:
            raise TimeoutError


def client_config(
    settings: StorageSettings, *, max_attempts: int, max_connections: int
) -> AioConfig:
    """The aiobotocore client configuration of an :class:`~archiver.storage.s3.S3Store`."""
    return AioConfig(
        # No second SHA-256 of every body for SigV4 (botocore would add one on
        # plain-http endpoints): integrity rests on the x-amz-checksum-sha256
        # (or Content-MD5) header, which is signed and which the server checks.
        s3={
            "addressing_style": settings.addressing_style,
            "payload_signing_enabled": False,
        },
        # SigV4 presigned URLs: SigV2 is refused by newer AWS regions.
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max_connections,
        # Every attempt is bounded on both sides: connect, silence while the
        # answer is awaited or read, and a whole-request deadline sized by the
        # body (see the module docstring: a hung upload otherwise waits for ever).
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        http_session_cls=deadline_session(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            min_throughput=settings.min_throughput,
        ),
        # Checksums are sent explicitly; botocore must add no CRC32 of its own
        # nor ask for checksums on GET (the MD5 fallback is for endpoints that
        # refuse them; readers check the manifest's SHA-256 themselves).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
