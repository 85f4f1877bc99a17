"""A throwaway aiohttp server on loopback: a few handlers, a free port, every path counted."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Served:
    """A running throwaway server: its base URL and the path of every request it got."""

    url: str
    port: int
    hits: list[str] = field(default_factory=list)


@asynccontextmanager
async def serve(
    routes: Mapping[str, Handler],
    *,
    host: str = "127.0.0.1",
    ssl_context: ssl.SSLContext | None = None,
    client_max_size: int = 1024**2,
) -> AsyncIterator[Served]:
    """Serve ``routes`` (path pattern -> handler, any method) on ``host`` at a free port."""
    served = Served("", 0)

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        served.hits.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[count], client_max_size=client_max_size)
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0, ssl_context=ssl_context).start()
        served.port = runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        served.url = f"{scheme}://{host}:{served.port}"
        yield served
    finally:
        await runner.cleanup()
