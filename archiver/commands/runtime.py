"""Building the pipeline from the settings: the only place that knows the adapters."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from archiver.errors import ConfigError
from archiver.http import ApiClient, make_session
from archiver.manifest.writer import HeadHook
from archiver.pipeline.adoption import ArchiveGuard, open_index
from archiver.pipeline.hosts import HostPolicy, guarded_connector
from archiver.pipeline.policy import RetryPolicy
from archiver.pipeline.runner import Pipeline
from archiver.pipeline.stats import PipelineConfig
from archiver.pipeline.transfer import TransferConfig, Transferrer
from archiver.settings import Settings, require_source
from archiver.sources import CdrSource, make_source
from archiver.state import open_state_store
from archiver.state.protocols import State
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.storage.keys import validate_template


@dataclass
class Runtime:
    """The opened adapters of one command."""

    source: CdrSource
    state: State
    store: ObjectStore
    pipeline: Pipeline


def validate_settings(settings: Settings) -> None:
    """What the settings model cannot check alone: the source's required values,
    the key template, the state URL. ConfigError naming the variable."""
    require_source(settings.source)
    try:
        validate_template(settings.storage.key_template)
    except ValueError as exc:
        raise ConfigError(f"ARCHIVER_STORAGE__KEY_TEMPLATE: {exc}") from None
    settings.state.validate_url()


@asynccontextmanager
async def _stamper(settings: Settings) -> AsyncIterator[HeadHook | None]:
    """What stamps each chain head with the TSA's time, for the block; None when no
    TSA is set (then its modules, cryptography's X.509 among them, are not loaded)."""
    if settings.timestamp.url is None:
        yield None
        return
    from archiver.manifest.stamps import head_stamper  # noqa: PLC0415
    from archiver.timestamping import open_stamper  # noqa: PLC0415

    async with open_stamper(settings.timestamp) as stamper:
        yield head_stamper(stamper) if stamper is not None else None


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open every client once, at the top, and close them all on the way out."""
    validate_settings(settings)
    policy = HostPolicy(settings.source.recording_hosts, settings.source.effective_base_url)
    recordings_connector = guarded_connector(
        policy, limit=settings.concurrency, limit_per_host=settings.per_host_connections
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.source.connect_timeout, sock_read=settings.source.read_timeout
    )
    async with (
        make_session(settings.source) as api_session,
        aiohttp.ClientSession(connector=recordings_connector, timeout=timeout) as rec_session,
        open_state_store(settings.state) as state,
        open_store(settings.storage, max_connections=settings.concurrency * 2) as store,
        _stamper(settings) as on_head,
    ):
        source = make_source(settings.source, ApiClient(api_session, settings.source))
        transferrer = Transferrer(
            rec_session,
            store,
            policy,
            TransferConfig.of(settings),
        )
        # The archive is asked before a call line is written (the state is only a cache).
        guard = ArchiveGuard(
            store, state.outcomes, state.batches, open_index(settings.console.index_path)
        )
        pipeline = Pipeline(
            source,
            state,
            store,
            transferrer,
            RetryPolicy(settings.retry),
            PipelineConfig.of(settings),
            on_head=on_head,
            guard=guard,
        )
        try:
            yield Runtime(source, state, store, pipeline)
        finally:
            guard.close()


class StopSignals:
    """SIGINT/SIGTERM for a whole command: the first asks ``target`` for a graceful
    stop; a second one cancels the command's task at once.

    Installed before the adapters are opened and removed only after they are
    closed, so a second signal during teardown is still ours (not the default
    action, which would kill the process mid-cleanup). A first signal that
    comes before there is a target is kept and applied when the target is set.
    """

    def __init__(self) -> None:
        self._target: Callable[[], None] | None = None
        self.seen = 0
        self._task = asyncio.current_task()

    @property
    def target(self) -> Callable[[], None] | None:
        """What a first signal calls: the graceful stop."""
        return self._target

    @target.setter
    def target(self, stop: Callable[[], None] | None) -> None:
        self._target = stop
        if stop is not None and self.seen == 1:
            stop()

    def _handle(self) -> None:
        self.seen += 1
        if self.seen == 1:
            if self._target is not None:
                self._target()
        elif self._task is not None:
            self._task.cancel()

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
