"""A reverse proxy on loopback that counts what one process asks of the provider.

Several pipelines in one test share one simulated provider; each reaches it
through its own proxy, so the requests each made can be told apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

# Hop-by-hop and framing headers aiohttp sets again on each side.
_DROPPED = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Proxy:
    """A running proxy: its base URL and every request it forwarded (path and query)."""

    url: str
    requests: list[URL] = field(default_factory=list)

    def count(self, path: str) -> int:
        """Requests forwarded to exactly ``path``."""
        return sum(1 for r in self.requests if r.path == path)


@asynccontextmanager
async def reverse_proxy(
    target: str, *, before: Callable[[URL], Awaitable[None]] | None = None
) -> AsyncIterator[Proxy]:
    """Forward every request to the base URL ``target`` while the context lasts;
    ``before`` (given the request's path and query) is awaited before forwarding."""
    proxy = Proxy("")
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def forward(request: web.Request) -> web.Response:
            proxy.requests.append(request.rel_url)
            if before is not None:
                await before(request.rel_url)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
            async with session.request(
                request.method,
                URL(target).join(request.rel_url),
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as upstream:
                body = await upstream.read()
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROPPED}
                return web.Response(status=upstream.status, body=body, headers=kept)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            proxy.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield proxy
        finally:
            await runner.cleanup()
