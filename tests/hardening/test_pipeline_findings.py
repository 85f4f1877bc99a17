"""Failures the hardening suites found outside the parsers and the storage; each of these
tests failed before its fix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver.commands.runtime import open_runtime
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.sources.base import Page
from tests.support.pipeline import make_settings


class BrokenListing:
    """A source whose listing fails with an unexpected error after its first page."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_window(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        async for page in self._inner.list_window(start, end):
            yield page
            raise RuntimeError("a bug in the listing")


async def test_an_unexpected_error_while_listing_ends_the_run_loudly(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(seed=3, calls=30, max_size=60_000))
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"))
        async with open_runtime(settings) as rt:
            rt.pipeline.source = BrokenListing(rt.pipeline.source)
            start = sim.config.start
            try:
                await rt.pipeline.backfill([(start, start + sim.config.span)])
            except RuntimeError:
                return  # what it should do: the bug surfaces
            raise AssertionError("the run ended normally after its listing crashed")
