"""Shared by the pipeline tests: building settings, running a backfill, checking the archive."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from archiver.commands.runtime import Runtime, open_runtime
from archiver.models import Provider
from archiver.pipeline.poller import Poller
from archiver.pipeline.stats import RunStats
from archiver.pipeline.sweep import Sweeper
from archiver.settings import (
    ConsoleSettings,
    RetrySettings,
    Settings,
    SourceSettings,
    StateSettings,
    StorageSettings,
)
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.timeutil import split_windows

# Calls on a fixed day make the simulator's API fault draws (keyed by requests that
# name their dates) the same on every run; with a ready deadline reaching back to
# that day, a recording that 404s still counts as "not ready yet".
FIXED_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LONG_READY_DEADLINE = 3650 * 86400.0

FAST_RETRY = RetrySettings(
    max_attempts=30, initial=0.01, maximum=0.05, not_ready_initial=0.05, not_ready_maximum=0.2
)


def make_settings(
    sim: Simulator,
    base: str,
    storage: StorageSettings,
    state_path: str,
    kind: Provider = Provider.CDR_V2,
    **overrides: Any,
) -> Settings:
    source: dict[str, Any] = {
        "kind": kind,
        "base_url": base,
        "timezone": sim.config.timezone,
        "page_size": 25,
        "rate_limit": 0,
        "max_backoff": 0.05,
        "max_attempts": 20,
    }
    if kind is Provider.CDR_V2:
        source["token"] = SecretStr(sim.config.token)
    else:
        source["api_key"] = SecretStr(sim.config.api_key)
        source["api_secret"] = SecretStr(sim.config.api_secret)
    source.update(overrides.pop("source", {}))
    values: dict[str, Any] = {
        "source": SourceSettings.model_validate(source),
        "storage": storage,
        "state": StateSettings(url=state_path),
        "concurrency": 8,
        "retry": FAST_RETRY,
        "manifest_interval": 0.2,
        "backfill_max_wait": 30,
        "grace": 5,
    }
    if "console" not in overrides:
        # The local index of the manifests in a folder of its own (a test may list the
        # state's), never a file in the working directory shared by every test.
        where = Path(tempfile.mkdtemp(prefix="archiver-index-"))
        # Removed when the test run ends (settings outlive the test that made them).
        atexit.register(shutil.rmtree, where, True)
        values["console"] = ConsoleSettings(index_path=where / "index.sqlite3")
    values.update(overrides)
    return Settings.model_validate(values)


def producers(
    rt: Runtime, clock: Callable[[], datetime], poller: type[Poller] = Poller
) -> tuple[Poller, Sweeper]:
    """The daemon's poller (or a ``poller`` subclass) and sweeper over ``rt``'s pipeline.

    On ``clock``, for tests that step them one round at a time instead of running the daemon.
    """
    p = rt.pipeline
    return (
        poller(
            rt.source, rt.state.progress, rt.state.reports, p.config,
            clock=clock, health=p.health, metrics=p.metrics, stats=p.stats,
        ),
        Sweeper(
            rt.source, rt.state.rechecks, p.config,
            clock=clock, metrics=p.metrics, ready_deadline=p.retry.ready_deadline,
        ),
    )  # fmt: skip


async def backfilled_writer(
    root: Path, *, calls: int, max_size: int, seed: int = 9
) -> tuple[StorageSettings, str, Simulator]:
    """A local archive under ``root`` of ``calls`` simulated calls, each with a recording,
    backfilled two lines a manifest object by one writer: its storage, that writer, and
    the simulator (its calls)."""
    sim = Simulator(
        SimConfig(seed=seed, calls=calls, recording_fraction=1.0, min_size=2_000, max_size=max_size)
    )
    storage = StorageSettings(url=str(root / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(root / "s.sqlite3"), manifest_batch=2)
        await backfill(settings, sim)
    (writer,) = [p.name for p in (root / "archive" / "_archiver" / "chain").iterdir()]
    return storage, writer, sim


async def backfill(settings: Settings, sim: Simulator) -> tuple[RunStats, dict[str, int]]:
    """Backfill the simulator's whole span; return the run's stats and the state counts."""
    async with open_runtime(settings) as rt:
        start = sim.config.start
        windows = split_windows(
            start, start + sim.config.span, sim.config.span / 4, rt.source.granularity
        )
        stats = await rt.pipeline.backfill(windows)
        counts = {k.value: v for k, v in (await rt.state.reports.counts()).items()}
    return stats, counts


@dataclass
class ArchiveContents:
    lines: list[dict[str, Any]]
    recordings: dict[str, int]  # key -> size, every object under recordings/
    manifest_objects: int


async def read_archive(storage: StorageSettings) -> ArchiveContents:
    """Every manifest line and every recording object, straight from the storage."""
    lines: list[dict[str, Any]] = []
    recordings: dict[str, int] = {}
    manifests = 0
    async with open_store(storage) as store:
        async for obj in store.list("manifests/"):
            manifests += 1
            body = b"".join([c async for c in store.read(obj.key)])
            lines += [json.loads(line) for line in body.decode().splitlines()]
        async for obj in store.list("recordings/"):
            recordings[obj.key] = obj.size
    return ArchiveContents(lines, recordings, manifests)


async def assert_exactly_once(
    sim: Simulator, storage: StorageSettings, kind: Provider = Provider.CDR_V2
) -> ArchiveContents:
    """Every simulated recording is in the storage once, with the right bytes, and
    in the manifest once; nothing else is there."""
    contents = await read_archive(storage)
    expected = {c.sip_call_id: c for c in sim.calls if c.has_recording}
    ids = [line["sip_call_id"] for line in contents.lines]
    assert len(ids) == len(set(ids)), "a recording is in the manifest twice"
    assert set(ids) == set(expected)
    prefix = storage.bucket_and_prefix[1] if storage.is_s3 else ""
    async with open_store(storage) as store:
        for line in contents.lines:
            call = expected[line["sip_call_id"]]
            assert line["sha256"] == call.sha256()
            assert line["size"] == call.size
            assert line["provider"] == kind.value
            assert line["content_type"] == call.content_type
            key = line["object_key"].removeprefix(prefix)
            assert key.endswith("." + call.fmt)
            digest = _sha(b"".join([c async for c in store.read(key)]))
            assert digest == call.sha256(), f"object {key} is corrupt"
    assert sorted(contents.recordings) == sorted(
        line["object_key"].removeprefix(prefix) for line in contents.lines
    ), "objects in the storage that the manifest does not list"
    return contents


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def counts_total(counts: Mapping[str, int]) -> int:
    return sum(counts.values())
