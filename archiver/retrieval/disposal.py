"""A disposition run as ``archiver dispose`` and the console both do it: the survey of
what is due, the run, its certificate of destruction, the stamp on the tombstones' chain.

One code path for both: the console's due list is ``dispose --dry-run``'s, and an
approved request deletes through :func:`archiver.retrieval.disposition.execute`, the
CLI's own. A request covers a fixed list of recordings (``only``): at approval the
survey is made again over that list alone, so a recording put on hold, locked or
disposed of since the request is skipped with the reason, never deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.retention import Due, Schedule
from archiver.manifest.stamps import stamp_head
from archiver.manifest.writer import read_head
from archiver.privacy.lines import Opener
from archiver.retrieval.disposition import Outcome, Plan, candidates, plan
from archiver.retrieval.tombstones import Named, Tombstones, read_tombstones
from archiver.settings import TimestampSettings
from archiver.storage.base import ObjectStore
from archiver.timestamping import open_stamper


@dataclass
class Survey:
    """What a survey found: the plan, and the tombstones it was made against."""

    found: Plan
    tombstones: Tombstones

    @property
    def due(self) -> int:
        """Recordings the run would delete (pending ones included)."""
        return len(self.found.deletable) + len(self.found.pending)


def due_by(
    schedule: Schedule,
    as_of: datetime,
    only: Collection[Named] | None = None,
    opener: Opener | None = None,
) -> Callable[[ManifestEntry], Due | None]:
    """The line's Due when its retention ended by ``as_of`` (and it is one of ``only``);
    ``opener`` opens a sealed line's numbers for the rules that name numbers."""

    def due(call: ManifestEntry) -> Due | None:
        if only is not None and (call.object_key, call.sha256) not in only:
            return None
        fields = opener.fields(call.fields) if opener is not None else call.fields
        found = schedule.due(fields)
        return found if found.due_by(as_of) else None

    return due


async def survey(
    store: ObjectStore,
    schedule: Schedule,
    as_of: datetime,
    now: datetime,
    only: Collection[Named] | None = None,
    *,
    opener: Opener | None = None,
) -> Survey:
    """What is due by ``as_of``, what is kept and why (holds, Object Lock dates, now)."""
    tombstones = await read_tombstones(store)
    wanted = due_by(schedule, as_of, only, opener)
    found = await plan(store, tombstones, candidates(store, wanted), now)
    return Survey(found, tombstones)


def certificate_details(
    outcome: Outcome, found: Plan, as_of: datetime, approver: str
) -> dict[str, Any]:
    """The certificate of destruction as the ``dispose`` audit record holds it."""
    return {
        "as_of": as_of.isoformat(),
        "approved_by": approver,
        "tombstone_chain": outcome.writer,
        "disposed": [json.loads(s.to_line()) for s in outcome.disposed],
        "bytes": sum(s.size for s in outcome.disposed),
        "kept": [
            {"object_key": c.call.object_key, "cdr_id": c.call.cdr_id, "reason": why}
            for c, why in found.kept
        ],
        "failed": [{"object_key": k, "reason": why} for k, why in outcome.failed],
    }


async def stamp_chain(store: ObjectStore, settings: TimestampSettings, writer: str | None) -> None:
    """Timestamp the head of the tombstones' chain ``writer``, where a TSA is set."""
    if writer is None:
        return
    async with open_stamper(settings) as stamper:
        head = await read_head(store, writer)
        if stamper is not None and head is not None:
            await stamp_head(store, stamper, head)
