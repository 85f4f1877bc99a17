"""What an archive written by ``run`` over months holds, cut into manifest batches (pure).

The calls are the simulator's (:func:`archiver.simulator.calls.iter_calls` of
:func:`sim_config`), so ``archiver reconcile`` against a simulator of the same
config finds every one archived. Each call is rendered as the simulator's
cdr_v2 API sends it and parsed by the archiver's own cdr_v2 source, so a line
holds what a real line of that CDR holds.

Who wrote what, in time order (``D`` days in all):

- the first ``legacy`` calls: an archiver from before contract v2, in objects
  of 100 lines without proof fields and without links, named with its run id;
  ``archiver seal`` later brought them under a chain of their own;
- a *service* writer (``run``, one state database, replicas taking turns as
  leader) until 60% of the days, then a second service writer (the service
  moved to a new state database: a new writer id, a chain from seq 1): one
  object per manifest flush (every ``window`` seconds, about 4 lines), split at
  local midnight as the state's batch cut splits by manifest date;
- a *backfill* writer: the days of an outage of the service (2% of the days
  from 40% on, none under five days), archived later in objects of 1,000
  lines, as ``backfill`` writes;
- leader changes every one to four days: the new leader flushes after the old
  one's lease lapsed, so the lines of about a lease (60 s) plus a renewal
  interval land in one larger object. Nothing else of a change shows in the
  archive: the replicas share the state, so the writer id and its seq numbering
  (max + 1) go on, and the head's compare-and-swap keeps it moving forward.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from archiver.models import CallRecord
from archiver.simulator.calls import SimCall, iter_calls
from archiver.simulator.config import SimConfig
from archiver.simulator.records import default_record, flex_record, quirks
from archiver.sources.cdr_v2 import parse_record

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2021, 1, 4, tzinfo=TZ)
LEGACY_LINES = 100  # lines per object of the pre-v2 archiver
BACKFILL_LINES = 1000  # a backfill's batch (ARCHIVER_MANIFEST_BATCH's default)
LEASE_GAP = 60 + 20  # seconds without a flush at a change of leader: a lease and a renewal


@dataclass(frozen=True)
class Shape:
    """The archive to write: how many calls, how many a day, and who wrote them."""

    calls: int
    per_day: int = 10_000
    seed: int = 7
    lines_per_object: float = 4.0
    legacy: int | None = None  # default: 0.2% of the calls, at most 2,000

    @property
    def span(self) -> timedelta:
        """The time the calls spread over."""
        return timedelta(seconds=max(1, round(self.calls * 86_400 / self.per_day)))

    @property
    def days(self) -> int:
        """Days the calls spread over (the last one may be partial)."""
        return max(1, -(-self.calls // self.per_day))

    @property
    def window(self) -> float:
        """Seconds between two flushes of the service: ``lines_per_object`` calls on average."""
        return 86_400 * self.lines_per_object / self.per_day

    @property
    def legacy_calls(self) -> int:
        """How many of the first calls the pre-v2 archiver wrote."""
        return min(2000, self.calls // 500) if self.legacy is None else self.legacy

    def writer(self, name: str) -> str:
        """A writer id (or the pre-v2 run id, 12 hex digits), fixed by the seed."""
        digest = hashlib.sha256(f"shape:{self.seed}:{name}".encode()).hexdigest()
        return digest[:12] if name == "legacy" else f"w{digest[:16]}"


def sim_config(shape: Shape) -> SimConfig:
    """The simulator world whose calls the archive holds (every call recorded)."""
    return SimConfig(
        seed=shape.seed, calls=shape.calls, start=START, span=shape.span, recording_fraction=1.0
    )


@dataclass
class Batch:
    """One manifest object to write: its writer, kind, partition date and calls."""

    kind: str  # "legacy", "service" or "backfill"
    writer: str
    day: str  # the manifest partition: the calls' local date
    archived_at: datetime
    calls: list[tuple[SimCall, CallRecord]] = field(default_factory=list)
    taken_over: bool = False  # the first flush of a new leader


def cdr_record(call: SimCall) -> CallRecord:
    """The call as the archiver reads it from the simulator's cdr_v2 API."""
    render = flex_record if quirks(call.seed, call.index).flex else default_record
    record = render(call, f"http://sim.invalid/recordings/{call.filename}", TZ)
    return parse_record(record, TZ)


class _Leaders:
    """When leadership changed: a pause of LEASE_GAP seconds every one to four days."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"shape-leaders:{seed}")
        self._next = START + timedelta(days=self._rng.uniform(1, 4))

    def gap_end(self, moment: datetime) -> datetime | None:
        """The end of the pause ``moment`` falls in, if any (moments come in order)."""
        while moment >= self._next + timedelta(seconds=LEASE_GAP):
            self._next += timedelta(days=self._rng.uniform(1, 4))
        if self._next <= moment:
            return self._next + timedelta(seconds=LEASE_GAP)
        return None


def batches(shape: Shape) -> Iterator[Batch]:
    """Every manifest object of the archive, in the order ``run`` (and the rest) cut them."""
    days = shape.days
    # No outage in an archive of under five days: its one day would be most of it.
    outage = (
        START + timedelta(days=int(days * 0.4)),
        max(1, round(days * 0.02)) if days >= 5 else 0,
    )
    outage_end = outage[0] + timedelta(days=outage[1])
    switch = START + timedelta(days=max(1, int(days * 0.6)))
    backfilled_at = (outage_end + timedelta(days=9)).astimezone(UTC)
    leaders = _Leaders(shape.seed)
    current: Batch | None = None
    group: object = None
    for n, call in enumerate(iter_calls(sim_config(shape))):
        record = cdr_record(call)
        day = call.started_at.astimezone(TZ).date().isoformat()
        started = call.started_at
        gap_end: datetime | None = None
        if n < shape.legacy_calls:
            kind, cut = "legacy", (n // LEGACY_LINES, day)
            archived = started + timedelta(minutes=1)
        elif outage[0] <= started < outage_end:
            kind, cut = "backfill", (n // BACKFILL_LINES, day)
            archived = backfilled_at
        else:
            kind = "service"
            flush = _flush_time(shape, started)
            gap_end = leaders.gap_end(flush)
            if gap_end is not None:
                flush = _flush_time(shape, gap_end)
            cut, archived = (flush, day), flush + timedelta(seconds=2)
        if current is None or (kind, cut) != group:
            if current is not None:
                yield current
            name = kind if kind != "service" else ("service-a" if started < switch else "service-b")
            current = Batch(kind, shape.writer(name), day, archived.astimezone(UTC))
            current.taken_over = kind == "service" and gap_end is not None
            group = (kind, cut)
        current.calls.append((call, record))
    if current is not None:
        yield current


def _flush_time(shape: Shape, moment: datetime) -> datetime:
    """The first flush of the service at or after ``moment``."""
    since = (moment - START).total_seconds()
    return START + timedelta(seconds=(int(since // shape.window) + 1) * shape.window)
