"""What the parts of one run share: its adapters, its clock, its counters, its owner.

Built once by :class:`~archiver.pipeline.runner.Pipeline` and handed whole to
the parts that work on claimed jobs, instead of each taking a dozen of the
pipeline's attributes one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from archiver.metrics import Metrics
from archiver.pipeline.intake import Health
from archiver.pipeline.stats import RunStats
from archiver.sources.base import CdrSource
from archiver.state.protocols import Outcomes
from archiver.storage.base import ObjectStore


@dataclass(frozen=True)
class RunContext:
    """One run's shared parts (read-only: each part keeps its own state)."""

    source: CdrSource
    outcomes: Outcomes  # what the job handler records of each claimed job
    store: ObjectStore
    clock: Callable[[], datetime]
    stats: RunStats
    metrics: Metrics
    health: Health
    # The lease holder this run's claims are made as: an outcome is written only while it holds.
    owner: str
