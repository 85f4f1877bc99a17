"""The one fault proxy of the tests: a TCP proxy on loopback with named toxics
(after Shopify's Toxiproxy), optionally in front of an S3 request layer.

``FaultProxy(upstream)`` forwards ``127.0.0.1:<port>`` to ``upstream`` (a base
URL). Toxics, added and removed by name while the proxy runs, act on
connections:

- ``refuse``: nothing listens on the port any more (ECONNREFUSED); connections
  open when it is added are reset.
- ``reset``: every connection, open or new, is reset (RST) at once.
- ``hang``: connections are accepted and then neither read nor answered, and
  the connections open when it is added stop dead too: a silent partition, a
  hung load balancer. A connection caught in a hang stays hung after the toxic
  is removed (the peer behind the balancer lost it); only new connections work
  again, so a client that waits without a deadline waits for ever.
- ``slow``: each chunk, both ways, waits ``latency`` seconds and goes at most
  at ``rate`` bytes per second.

With ``requests=True`` (the default, for S3 endpoints) the connections go
through :class:`~tests.support.s3faults.S3Layer`, which knows S3 requests:
seeded request faults (503 SlowDown, 500, cut bodies, lost answers), ``hold``
points for the crash tests, and per-operation counts in ``stats``.
``requests=False`` forwards bytes only (any TCP service: the simulator's API).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from tests.support.s3faults import Hold, ProxyFaults, S3Layer, S3Request

__all__ = ["FaultProxy", "Kind", "ProxyFaults", "S3Request", "Toxic"]

Kind = Literal["refuse", "reset", "hang", "slow"]
# When several toxics are active, the strongest acts.
_STRENGTH: dict[Kind, int] = {"refuse": 3, "reset": 2, "hang": 1, "slow": 0}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Toxic:
    """One named toxic: its kind and, for ``slow``, its latency and rate."""

    kind: Kind
    latency: float = 0.0
    rate: int | None = None


class _Connection:
    """One proxied connection: the client's side, the upstream side, hung or not."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.hung = False
        self.closed = asyncio.Event()

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _rst(writer)
        self.closed.set()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """The proxy: ``async with proxy.serve() as url``; toxics with :meth:`add_toxic`,
    :meth:`remove_toxic` or ``async with proxy.toxic(kind)``."""

    def __init__(
        self,
        upstream: str,
        faults: ProxyFaults | None = None,
        *,
        seed: int = 0,
        hold: Hold | None = None,
        forget_completed: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        requests: bool = True,
    ) -> None:
        self.upstream = upstream
        self.layer = (
            S3Layer(
                upstream,
                faults or ProxyFaults(),
                seed=seed,
                hold=hold,
                forget_completed=forget_completed,
                ssl_context=ssl_context,
            )
            if requests
            else None
        )
        self.scheme = "https" if ssl_context else urlsplit(upstream).scheme or "http"
        self.toxics: dict[str, Toxic] = {}
        self.port = 0
        self.connections_seen = 0
        self._target: tuple[str, int] = ("", 0)
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the request layer's view ------------------------------------------------------

    @property
    def stats(self) -> collections.Counter[str]:
        """Requests, operations and faults the request layer counted."""
        return self.layer.stats if self.layer is not None else collections.Counter()

    @property
    def injected(self) -> int:
        """Request faults injected so far."""
        return self.layer.injected if self.layer is not None else 0

    @property
    def faults(self) -> ProxyFaults:
        """The request layer's fault rates (settable while the proxy runs)."""
        assert self.layer is not None, "a requests=False proxy has no request faults"
        return self.layer.faults

    @faults.setter
    def faults(self, value: ProxyFaults) -> None:
        assert self.layer is not None, "a requests=False proxy has no request faults"
        self.layer.faults = value

    @property
    def forget_completed(self) -> bool:
        """Whether a repeated CompleteMultipartUpload is answered 404 NoSuchUpload."""
        return self.layer is not None and self.layer.forget_completed

    @forget_completed.setter
    def forget_completed(self, value: bool) -> None:
        assert self.layer is not None, "a requests=False proxy has no request faults"
        self.layer.forget_completed = value

    # -- toxics --------------------------------------------------------------------------

    @property
    def active(self) -> Toxic | None:
        """The strongest toxic in force (None: the proxy forwards faithfully)."""
        if not self.toxics:
            return None
        return max(self.toxics.values(), key=lambda t: _STRENGTH[t.kind])

    async def add_toxic(
        self, name: str, kind: Kind, *, latency: float = 0.0, rate: int | None = None
    ) -> None:
        """Put a toxic in force (replacing one of the same name)."""
        self.toxics[name] = Toxic(kind, latency, rate)
        await self._apply()

    async def remove_toxic(self, name: str) -> None:
        """Take a toxic away (no error if it is not there)."""
        self.toxics.pop(name, None)
        await self._apply()

    @contextlib.asynccontextmanager
    async def toxic(
        self, kind: Kind, *, latency: float = 0.0, rate: int | None = None
    ) -> AsyncIterator[None]:
        """A toxic in force for the block."""
        name = f"{kind}-{id(object())}"
        await self.add_toxic(name, kind, latency=latency, rate=rate)
        try:
            yield
        finally:
            await self.remove_toxic(name)

    async def _apply(self) -> None:
        toxic = self.active
        kind = toxic.kind if toxic is not None else None
        if kind in ("refuse", "reset"):
            for conn in list(self._open):
                conn.reset()
        elif kind == "hang":
            for conn in self._open:
                conn.hung = True
        if kind == "refuse" and self._server is not None:
            self._server.close()
            self._server = None
        elif kind != "refuse" and self._server is None and self.port:
            await self._listen(self.port)

    # -- serving -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1") -> AsyncIterator[str]:
        """Listen on a free port of ``host`` while the block runs; yields the endpoint URL."""
        async with contextlib.AsyncExitStack() as stack:
            if self.layer is not None:
                inner = urlsplit(await stack.enter_async_context(self.layer.serve()))
                self._target = (inner.hostname or "127.0.0.1", inner.port or 80)
            else:
                target = urlsplit(self.upstream)
                default = 443 if target.scheme == "https" else 80
                self._target = (target.hostname or "127.0.0.1", target.port or default)
            self._host = host
            await self._listen(0)
            try:
                yield f"{self.scheme}://{host}:{self.port}"
            finally:
                if self._server is not None:
                    self._server.close()
                    self._server = None
                for conn in list(self._open):
                    conn.reset()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._host, port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        conn = _Connection(writer)
        toxic = self.active
        if toxic is not None and toxic.kind in ("refuse", "reset"):
            conn.reset()
            return
        self._open.add(conn)
        try:
            if toxic is not None and toxic.kind == "hang":
                conn.hung = True
                await conn.closed.wait()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                conn.reset()
                return
            conn.upstream = up_writer
            await asyncio.gather(
                self._pipe(conn, reader, up_writer), self._pipe(conn, up_reader, writer)
            )
        finally:
            self._open.discard(conn)
            if not conn.hung:
                with contextlib.suppress(OSError):
                    writer.close()

    async def _pipe(
        self, conn: _Connection, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                if conn.hung:
                    await conn.closed.wait()  # neither read nor answered, ever
                    return
                data = await src.read(_CHUNK)
                if not data or conn.closed.is_set():
                    break
                if conn.closed.is_set() or self._caught(conn):
                    continue  # a hang began while this chunk was read: drop it
                await self._slow(len(data))
                dst.write(data)
                await dst.drain()
        if not conn.hung:
            with contextlib.suppress(OSError):
                dst.close()

    async def _slow(self, size: int) -> None:
        toxic = self.active
        if toxic is None or toxic.kind != "slow":
            return
        delay = toxic.latency + (size / toxic.rate if toxic.rate else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)

    @staticmethod
    def _caught(conn: _Connection) -> bool:
        return conn.hung

    def hung_connections(self) -> int:
        """Connections caught in a hang that are still open."""
        return sum(1 for conn in self._open if conn.hung)
