"""The daemon's HTTP endpoints: /healthz, /readyz and /metrics (aiohttp web).

- /healthz: the event loop answers, the pipeline's loop has moved recently, and
  no transfer has outlived its deadline.
- /readyz: the source was polled and the storage reached recently.
- /metrics: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from archiver.errors import ArchiverError, ListenError
from archiver.metrics import Metrics
from archiver.pipeline.intake import Health
from archiver.settings import ServiceSettings
from archiver.state.base import JobState
from archiver.state.protocols import Reports
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.service")


class Service:
    """Health, readiness and metrics of one running pipeline.

    It reads the pipeline's :class:`Health` (written by the pipeline, read
    here) and asks the state and the storage itself; it never touches the
    pipeline's own fields.
    """

    def __init__(
        self,
        health: Health,
        metrics: Metrics,
        reports: Reports,
        store: ObjectStore,
        settings: ServiceSettings,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.health = health
        self.metrics = metrics
        self.reports = reports
        self.store = store
        self.clock = clock
        self.settings = settings
        self.started = time.time()
        self.last_storage_ok: float | None = None
        self.storage_error: str | None = None

    # -- probes ------------------------------------------------------------------------

    async def probe_storage_once(self) -> None:
        """One readiness probe of the storage; remembers when it last answered."""
        timeout = max(self.settings.probe_interval, 5.0)
        try:
            await asyncio.wait_for(self.store.probe(), timeout=timeout)
        except (ArchiverError, TimeoutError) as exc:
            self.storage_error = str(exc) or "timed out"
            log.warning("storage probe failed: %s", self.storage_error)
            return
        self.last_storage_ok = time.time()
        self.storage_error = None

    async def probe_storage_forever(self) -> None:
        """Probe the storage every ``probe_interval`` seconds."""
        while True:
            await self.probe_storage_once()
            await asyncio.sleep(self.settings.probe_interval)

    # -- endpoints ---------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Alive and not stuck."""
        age = self.health.monotonic() - self.health.heartbeat
        if age > self.settings.stuck_after:
            return False, f"pipeline loop has not moved for {age:.0f}s"
        deadline = self.health.transfer_deadline
        oldest = self.health.oldest_transfer()
        # The deadline ends a transfer; stuck_after past it, something blocks it
        # (the dispatcher's heartbeat goes on while every worker hangs).
        if deadline is not None and oldest > deadline + self.settings.stuck_after:
            return (
                False,
                f"a transfer has been in flight for {oldest:.0f}s (deadline {deadline:g}s)",
            )
        return True, "ok"

    def ready(self) -> tuple[bool, dict[str, str]]:
        """Source and storage reached within ``ready_timeout``."""
        now = time.time()
        limit = self.settings.ready_timeout
        source = self.health.last_source_ok
        storage = self.last_storage_ok
        detail = {
            # A follower does not poll: the leader's readiness covers the source.
            "source": "ok"
            if self.health.follower or (source and now - source <= limit)
            else "not reached recently",
            "storage": "ok"
            if storage and now - storage <= limit
            else (self.storage_error or "not reached recently"),
        }
        return all(v == "ok" for v in detail.values()), detail

    async def _healthz(self, _: web.Request) -> web.Response:
        ok, why = self.healthy()
        return web.json_response({"status": why}, status=200 if ok else 503)

    async def _readyz(self, _: web.Request) -> web.Response:
        ok, detail = self.ready()
        return web.json_response(
            {"status": "ready" if ok else "not ready", **detail}, status=200 if ok else 503
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        await self.refresh_gauges()
        return web.Response(
            body=self.metrics.render(),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def refresh_gauges(self) -> None:
        """Gauges read from the state at scrape time: queue depth and lag."""
        metrics = self.metrics
        counts = await self.reports.counts()
        metrics.queue_depth.set(counts[JobState.PENDING] + counts[JobState.WAITING_READY])
        oldest = await self.reports.oldest_unarchived()
        now = self.clock()
        metrics.lag.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve the endpoints and run the storage probe; yields the base URL."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            host, port = self.settings.host, self.settings.port
            raise ListenError(host, port, exc, "ARCHIVER_SERVICE__PORT") from None
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        log.info("serving /healthz, /readyz and /metrics on %s", url)
        prober = asyncio.create_task(self.probe_storage_forever(), name="storage-probe")
        try:
            yield url
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            await runner.cleanup()
