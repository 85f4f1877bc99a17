"""The request layer of the fault proxy (tests/support/faultproxy.py): S3 faults.

Behind the proxy's connection-level toxics, each S3 request is forwarded byte
for byte (the Host header too, so SigV4 signatures
still match), unless the dice, drawn from a seeded generator, pick a fault:

- ``slow_down``: 503 ``SlowDown``, the answer S3 gives a client it throttles;
- ``internal``: 500 ``InternalError``;
- ``drop_request``: half the request body is read, then the connection is cut:
  nothing reaches the storage;
- ``drop_response``: the whole request reaches the storage and is carried out,
  then the connection is cut before the answer: the client cannot know it worked;
- ``cut_upstream``: half the body is sent on to the storage, then both
  connections are cut: the storage sees an upload die mid-body;
- ``denied``: 403 ``AccessDenied``, as a bucket policy refusing the operation
  answers (not retried: the client gives up at once).

``hold`` lets a test stop chosen requests at a chosen moment (before or after
the storage carried them out): the crash tests kill the archiver right there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

# "denied" last: a rate of 0 draws nothing, so the others meet the faults they always did.
FAULTS = ("slow_down", "internal", "drop_request", "drop_response", "cut_upstream", "denied")

# Never forwarded: they describe one connection, not the request.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Expect",
    )
)

_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message>"
    "<Resource>{resource}</Resource><RequestId>fault-proxy</RequestId></Error>"
)


@dataclass(frozen=True)
class S3Request:
    """What the proxy knows of one request: the S3 operation, the key, the body size."""

    method: str
    path: str
    query: dict[str, list[str]]
    operation: str
    key: str
    size: int


def operation(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str]:
    """(S3 operation name, object key) of a path-style request."""
    _, _, rest = path.lstrip("/").partition("/")
    key = rest
    if not key:
        if "uploads" in query:
            return "ListMultipartUploads", ""
        if method == "HEAD":
            return "HeadBucket", ""
        return "ListObjects", ""
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload", key
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload", key
    if method == "PUT" and "uploadId" in query:
        return "UploadPart", key
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload", key
    return {
        "PUT": "PutObject",
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "DELETE": "DeleteObject",
    }.get(method, method), key


Fault = Literal["slow_down", "internal", "drop_request", "drop_response", "cut_upstream", "denied"]
Hold = Callable[[S3Request, Literal["before", "after"]], Awaitable[None]]


@dataclass
class ProxyFaults:
    """Fault rates (0..1, drawn once per request, at most one fault each)."""

    slow_down: float = 0.0
    internal: float = 0.0
    drop_request: float = 0.0
    drop_response: float = 0.0
    cut_upstream: float = 0.0
    denied: float = 0.0
    only: Callable[[S3Request], bool] | None = None
    """Which requests may fail (default: every one)."""


@dataclass
class S3Layer:
    """The request layer: ``async with layer.serve() as url`` listens on a free port
    (the fault proxy's connections are forwarded there)."""

    upstream: str
    faults: ProxyFaults = field(default_factory=ProxyFaults)
    seed: int = 0
    hold: Hold | None = None
    forget_completed: bool = False
    """Answer a repeated CompleteMultipartUpload with 404 NoSuchUpload, as MinIO
    does (and AWS, once the upload is gone), instead of SeaweedFS's 412."""
    ssl_context: ssl.SSLContext | None = None
    stats: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        # How many times each request identity was drawn for (see _roll).
        self._draws: collections.Counter[str] = collections.Counter()
        self._session: aiohttp.ClientSession | None = None
        self._completed: set[str] = set()

    @property
    def injected(self) -> int:
        """How many faults were injected so far."""
        return sum(self.stats[f"fault:{name}"] for name in FAULTS)

    def _roll(self, request: S3Request) -> Fault | None:
        faults = self.faults
        if faults.only is not None and not faults.only(request):
            return None
        # The draw is a function of (seed, request identity, how many times that
        # identity was drawn before), as in the simulator: which request meets
        # which fault does not depend on how concurrent requests interleave.
        # The identity leaves out uploadId (new on every attempt).
        part = request.query.get("partNumber", [""])[0]
        identity = f"{request.method} {request.operation} {request.key} {part}"
        nth = self._draws[identity]
        self._draws[identity] += 1
        draw = random.Random(f"s3-fault-proxy:{self.seed}:{identity}:{nth}").random()
        for name in FAULTS:
            rate: float = getattr(faults, name)
            if draw < rate:
                if name in ("drop_request", "cut_upstream") and request.size == 0:
                    return "drop_response"  # no body to cut: lose the answer instead
                return name  # type: ignore[return-value]
            draw -= rate
        return None

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1") -> AsyncIterator[str]:
        """Listen on a free port of ``host`` while the block runs; yields the endpoint URL."""
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        connector = aiohttp.TCPConnector(limit=64)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        try:
            site = web.TCPSite(runner, host, 0, ssl_context=self.ssl_context)
            await site.start()
            port = runner.addresses[0][1]
            scheme = "https" if self.ssl_context else "http"
            yield f"{scheme}://{host}:{port}"
        finally:
            await runner.cleanup()
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = parse_qs(urlsplit(request.raw_path).query, keep_blank_values=True)
        op, key = operation(request.method, request.path, query)
        size = request.content_length or 0
        info = S3Request(request.method, request.path, query, op, key, size)
        self.stats["requests"] += 1
        self.stats[f"op:{op}"] += 1
        fault = self._roll(info)
        if fault is not None:
            self.stats[f"fault:{fault}"] += 1
            self.stats[f"fault:{fault}:{op}"] += 1
        if fault == "slow_down":
            await request.read()
            return _error(503, "SlowDown", "Please reduce your request rate.", request.path)
        if fault == "internal":
            await request.read()
            return _error(500, "InternalError", "We encountered an internal error.", request.path)
        if fault == "denied":
            await request.read()
            return _error(403, "AccessDenied", "Access Denied", request.path)
        if fault == "drop_request":
            await request.content.read(max(size // 2, 1))
            return _cut(request)
        upload_id = query.get("uploadId", [""])[0]
        if op == "CompleteMultipartUpload" and upload_id in self._completed:
            await request.read()
            self.stats["answered:NoSuchUpload"] += 1
            return _error(404, "NoSuchUpload", "The upload does not exist.", request.path)
        if self.hold is not None:
            await self.hold(info, "before")
        if fault == "cut_upstream":
            await self._forward_half(request, size)
            return _cut(request)
        body = await request.read()
        upstream = await self._forward(request, body)
        if op == "CompleteMultipartUpload" and upstream.status == 200 and self.forget_completed:
            self._completed.add(upload_id)
        if fault == "drop_response":
            await upstream.read()
            upstream.release()
            return _cut(request)
        try:
            if self.hold is not None:
                await self.hold(info, "after")
            return await _relay(request, upstream)
        finally:
            upstream.release()

    def _target(self, request: web.Request) -> URL:
        return URL(self.upstream + request.raw_path, encoded=True)

    def _headers(self, request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}

    async def _forward(self, request: web.Request, body: bytes) -> aiohttp.ClientResponse:
        assert self._session is not None
        return await self._session.request(
            request.method,
            self._target(request),
            headers=self._headers(request),
            # BytesIO: aiohttp warns (an error in the tests) about large raw bytes.
            data=io.BytesIO(body) if body else None,
            allow_redirects=False,
        )

    async def _forward_half(self, request: web.Request, size: int) -> None:
        """Send the headers and half the body upstream, then give up on the request."""
        assert self._session is not None
        half = await request.content.read(max(size // 2, 1))

        class _Cut(Exception):
            pass

        async def body() -> AsyncIterator[bytes]:
            yield half
            await asyncio.sleep(0.05)  # let the storage take in the first half
            raise _Cut

        with contextlib.suppress(_Cut, aiohttp.ClientError, asyncio.TimeoutError):
            resp = await self._session.request(
                request.method,
                self._target(request),
                headers=self._headers(request),
                data=body(),
                allow_redirects=False,
            )
            resp.release()
            self.stats["cut_upstream_answered"] += 1  # the storage answered a half body


def _error(status: int, code: str, message: str, resource: str) -> web.Response:
    return web.Response(
        status=status,
        text=_ERROR.format(code=code, message=message, resource=resource),
        content_type="application/xml",
    )


def _cut(request: web.Request) -> web.Response:
    """Close the client's connection without an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=599)


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in upstream.headers.items():
        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
            response.headers.add(name, value)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in upstream.content.iter_chunked(256 * 1024):
            await response.write(chunk)
    await response.write_eof()
    return response
