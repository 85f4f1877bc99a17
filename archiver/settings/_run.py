"""The pipeline's own settings: how a run (``run`` or ``backfill``) works.

They are the top-level settings (``ARCHIVER_CONCURRENCY``, ``ARCHIVER_POLL_INTERVAL``...):
:class:`~archiver.settings.Settings` is a ``RunSettings``, so the pipeline is
handed the settings as they are and each default lives here only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RunSettings(BaseModel):
    """How the pipeline runs: workers, leases, the daemon's polls and sweep, the manifest."""

    concurrency: int = Field(default=16, ge=1, le=512)
    # Seconds a claimed recording stays with its process without a heartbeat.
    lease: float = Field(default=120.0, ge=3)
    # run replicas: seconds the leader role stays with a replica that stopped
    # renewing it (renewed every third of it); also the lease of the manifest
    # writer's role and of a backfill window's listing.
    leader_lease: float = Field(default=30.0, ge=3)
    poll_interval: float = Field(default=10.0, gt=0)
    lookback: float = Field(default=7200.0, ge=0)
    # The backfill lists its range in windows of this many seconds; each
    # completed window is remembered, so a re-run skips it.
    window: float = Field(default=3600.0, ge=60)
    # Seconds in-flight transfers get to finish after SIGINT/SIGTERM.
    grace: float = Field(default=20.0, ge=0)
    # Manifest batches: at most this many lines per object; a line waits at most
    # manifest_interval seconds (counted from the first line since the last write).
    manifest_batch: int = Field(default=1000, ge=1, le=100_000)
    manifest_interval: float = Field(default=10.0, gt=0)
    # run: the leader rolls its writer's small manifest objects up (archiver rollup), off
    # the hot path, once this many were written since its last rollup, or every this many
    # seconds; 0 turns either trigger off.
    rollup_objects: int = Field(default=1000, ge=0, le=1_000_000)
    rollup_age: float = Field(default=86400.0, ge=0)
    # verify, get: a recording no manifest line names is an orphan (its line cut, or
    # never written) once older than manifest_interval plus this many seconds.
    orphan_margin: float = Field(default=300.0, ge=0)
    # Backfill: how long to wait, after listing, for retries that are not due yet.
    backfill_max_wait: float = Field(default=600.0, ge=0)
    # run: polls stay this many seconds behind now. 0 by default: a CDR written
    # late changes its minute's count, so the next poll lists it anyway.
    settle: float = Field(default=0.0, ge=0)
    # run: every this many seconds a sweep re-lists, in full, the calls that started
    # within ``longest_call`` seconds (the longest call you expect; at least the
    # lookback), and asks the source again about up to ``sweep_lookups`` recordings
    # that may still come (no URL yet, or never available) until the ready deadline.
    sweep_interval: float = Field(default=600.0, gt=0)
    longest_call: float = Field(default=14400.0, ge=0)
    sweep_lookups: int = Field(default=100, ge=0, le=10_000)
    # run: a warning (at most once a minute, at once when its cause changes) while
    # the lag, the age of the oldest recording not yet archived, passes this many
    # seconds; it says what the run waits for. The alert rules use the same threshold.
    lag_warning: float = Field(default=300.0, gt=0)
    # The event loop of run and backfill: uvloop (libuv, about 5-10% less CPU per
    # recording: docs/performance.md) where installed, else asyncio's own; "asyncio"
    # turns it off, "uvloop" requires it. Every other command runs on asyncio's.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
