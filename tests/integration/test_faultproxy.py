"""The fault proxy's toxics do what the fault tests rely on, against a real echo
server on loopback: refuse, reset, hang (and stay hung), slow, and faithful
forwarding once a toxic is gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.faultproxy import FaultProxy

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[str]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def roundtrip(url: str, data: bytes = PAYLOAD) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await reader.readexactly(len(data))
    finally:
        writer.close()


async def test_toxics_refuse_reset_hang_slow_then_forward():
    async with echo_server() as upstream:
        proxy = FaultProxy(upstream, requests=False)
        async with proxy.serve() as url:
            assert await roundtrip(url) == PAYLOAD

            await proxy.add_toxic("down", "refuse")
            with pytest.raises(ConnectionRefusedError):
                await roundtrip(url)
            await proxy.remove_toxic("down")
            assert await roundtrip(url) == PAYLOAD, "listening again on the same port"

            await proxy.add_toxic("cut", "reset")
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                await roundtrip(url)
            await proxy.remove_toxic("cut")

            await proxy.add_toxic("stall", "hang")
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(PAYLOAD)
            await writer.drain()
            # Nothing comes back while hung (a deadline the test sets, not a timing).
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):
                    await reader.readexactly(1)
            assert proxy.hung_connections() == 1
            await proxy.remove_toxic("stall")
            # The connection caught in the hang stays hung; a new one works.
            assert proxy.hung_connections() == 1
            assert await roundtrip(url) == PAYLOAD
            writer.close()

            async with proxy.toxic("slow", latency=0.01, rate=64 * 1024):
                assert await roundtrip(url) == PAYLOAD
            assert not proxy.toxics


async def test_the_strongest_toxic_acts():
    async with echo_server() as upstream:
        proxy = FaultProxy(upstream, requests=False)
        async with proxy.serve() as url:
            await proxy.add_toxic("a", "slow", latency=0.01)
            await proxy.add_toxic("b", "refuse")
            assert proxy.active is not None
            assert proxy.active.kind == "refuse"
            with pytest.raises(ConnectionRefusedError):
                await roundtrip(url)
            await proxy.remove_toxic("b")
            assert await roundtrip(url) == PAYLOAD
