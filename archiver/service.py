"""The daemon's HTTP endpoints: /healthz, /readyz and /metrics (aiohttp web).

- /healthz: the event loop answers, the pipeline's loop has moved recently (or
  waits for the state database, which is away: ARCHIVER_STATE__OUTAGE bounds
  that wait), and no transfer has outlived its deadline.
- /readyz: the source was polled recently, and the storage's last probe
  answered (and recently): readiness follows the probe, failing from the first
  probe that fails; and the state database answers.
- /metrics: Prometheus text format.

Beside the endpoints, a watch (every probe interval, also when the endpoints
are off) refreshes the gauges and warns when the lag passes
``ARCHIVER_LAG_WARNING``, saying what the run waits for (archiver/lag.py).
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
from archiver.lag import LagWatch, Waiting
from archiver.metrics import Metrics
from archiver.pipeline.intake import Health
from archiver.settings import ServiceSettings
from archiver.state.base import JobState
from archiver.state.outage import Availability
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
        lag_warning: float = 300.0,
        availability: Availability | None = None,
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
        self.state_error: str | None = None
        # Whether the state database answers, as its operations see it (None: not
        # followed here; the gauge then follows the scrape's own reads).
        self.availability = availability
        # Recordings due (pending) and not yet made available, at the last refresh.
        self.queued = 0
        self.not_ready = 0
        self.lag_watch = LagWatch(lag_warning, monotonic=time.monotonic)

    # -- probes ------------------------------------------------------------------------

    async def probe_storage_once(self) -> None:
        """One readiness probe of the storage; remembers when it last answered."""
        timeout = max(self.settings.probe_interval, 5.0)
        try:
            await asyncio.wait_for(self.store.probe(), timeout=timeout)
        except (ArchiverError, TimeoutError) as exc:
            self.storage_error = str(exc) or f"no answer within {timeout:g}s"
            self.metrics.storage_available.set(0)
            log.warning("storage probe failed: %s", self.storage_error)
            return
        if self.storage_error is not None:
            log.info("storage probe answered again: %s", self.store.description)
        self.last_storage_ok = time.time()
        self.storage_error = None
        self.metrics.storage_available.set(1)

    async def probe_storage_forever(self) -> None:
        """Probe the storage every ``probe_interval`` seconds."""
        while True:
            await self.probe_storage_once()
            await asyncio.sleep(self.settings.probe_interval)

    async def watch_forever(self) -> None:
        """Every ``probe_interval`` seconds: refresh the gauges, warn about the lag."""
        while True:
            lag = await self.refresh_gauges()
            if lag is not None:
                self.lag_watch.check(lag, self.waiting)
            await asyncio.sleep(self.settings.probe_interval)

    def waiting(self) -> Waiting:
        """What the run depends on, as last seen (for the lag warning)."""
        source = self.health.last_source_ok
        since = source if source is not None else self.started
        silent = time.time() - since
        return Waiting(
            storage_error=self.storage_error,
            state_error=self.state_error,
            source_silent_for=None
            if self.health.follower or silent <= self.settings.ready_timeout
            else silent,
            in_flight=self.health.in_flight(),
            oldest_transfer=self.health.oldest_transfer(),
            near_deadline=self.health.near_deadline(),
            queued=self.queued,
            not_ready=self.not_ready,
        )

    # -- endpoints ---------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Alive and not stuck."""
        age = self.health.monotonic() - self.health.heartbeat
        if age > self.settings.stuck_after and self._state_answers():
            # While the state is away the loop waits for it by design: not stuck
            # (readiness says so; past ARCHIVER_STATE__OUTAGE the run ends).
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
        # The last probe decides: a storage that stopped answering makes the
        # service unready from its first failed probe, not ready_timeout later.
        storage_ok = self.storage_error is None and storage and now - storage <= limit
        detail = {
            # A follower does not poll: the leader's readiness covers the source.
            "source": "ok"
            if self.health.follower or (source and now - source <= limit)
            else "not reached recently",
            "storage": "ok" if storage_ok else (self.storage_error or "not reached recently"),
        }
        if self.availability is not None:
            detail["state"] = "ok" if self.availability.available else self._state_away()
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

    async def refresh_gauges(self) -> float | None:
        """Gauges read at scrape time (queue depth, lag, transfers near their deadline,
        the state's availability); returns the lag, or None when the state is away."""
        metrics = self.metrics
        metrics.transfers_near_deadline.set(self.health.near_deadline())
        if not self._state_answers():
            # A read would wait for the state (its operations ride the outage out):
            # the scrape and the lag watch must not.
            self.state_error = self._state_away()
            metrics.state_available.set(0)
            return None
        try:
            async with asyncio.timeout(max(self.settings.probe_interval, 5.0)):
                counts = await self.reports.counts()
                oldest = await self.reports.oldest_unarchived()
        except Exception as exc:  # noqa: BLE001 - reported: the gauge, the lag warning
            # The state's own outage handling (reconnects, its bound) is the state
            # store's; here it only makes the gauge, and the lag warning, say so.
            # Any error: a driver's own (sqlite3's "disk is full") must not end the
            # watch, nor turn /metrics into a 500; a read not answered in time neither.
            self.state_error = str(exc) or type(exc).__name__
            metrics.state_available.set(0)
            return None
        self.state_error = None
        metrics.state_available.set(1)
        self.queued, self.not_ready = counts[JobState.PENDING], counts[JobState.WAITING_READY]
        metrics.queue_depth.set(self.queued + self.not_ready)
        now = self.clock()
        lag = max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
        metrics.lag.set(lag)
        return lag

    def _state_answers(self) -> bool:
        return self.availability is None or self.availability.available

    def _state_away(self) -> str:
        assert self.availability is not None
        away = self.availability
        return f"unreachable for {away.down_for():.0f}s: {away.reason}"

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
        try:
            async with self.watching():
                yield url
        finally:
            await runner.cleanup()

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Run the storage probe and the watch (gauges, lag warning) while the block runs;
        without the endpoints when they are turned off."""
        tasks = [
            asyncio.create_task(self.probe_storage_forever(), name="storage-probe"),
            asyncio.create_task(self.watch_forever(), name="lag-watch"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
