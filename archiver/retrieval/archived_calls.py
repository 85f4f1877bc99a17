"""The archive's own answer to "has this call a call line already?", for the pipeline.

The state database is a cache of work; the archive is the record. A state
that was lost, reset or replaced knows nothing of what earlier writers
archived, so before a call line is written the pipeline asks the archive,
through the local id index of the manifests
(:mod:`archiver.retrieval.local_index`, the file ``get`` uses):

- :meth:`ArchivedCalls.refresh` lists the date partitions asked for
  (``manifests/date=D/``, one LIST per partition and 1,000 objects) and reads
  each manifest object not indexed yet, once. A manifest this process wrote
  itself is indexed from its bytes (:meth:`ArchivedCalls.wrote`), not read back;
- :meth:`ArchivedCalls.find` looks the call's cdr id up in the index (no
  request) and, for an id the index names, reads the manifest objects it names
  (kept in a small cache: the calls of one object are asked for together) to
  find the line of that very (provider, cdr id): a hash collision costs a
  read, never a wrong answer.

Nothing is read per call in an archive that does not hold the call; a call
already archived costs at most one read per manifest object holding it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import date, timedelta

from archiver.index_db import IndexDatabase
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import parse_manifest, read_object
from archiver.retrieval.local_index import IdIndex
from archiver.storage.base import ObjectStore
from archiver.storage.layout import MANIFEST_PREFIX, partition_date

# Above this many days, one listing of every partition (then filtered) costs
# fewer requests than one listing per day.
_DAYS_LISTED_ONE_BY_ONE = 45
# Parsed manifest objects kept for lookups (each up to ~1,000 lines).
_CACHED_MANIFESTS = 16

Identity = tuple[str, str]


def partition_prefix(day: date) -> str:
    """The key prefix of one date partition of the manifest."""
    return f"{MANIFEST_PREFIX}date={day.isoformat()}/"


class ArchivedCalls:
    """Which calls the archive already holds a call line of (see the module docstring)."""

    def __init__(self, store: ObjectStore, db: IndexDatabase) -> None:
        self._store = store
        self._ids = IdIndex(db)
        self._cache: OrderedDict[str, dict[Identity, ManifestEntry]] = OrderedDict()
        self.reads = 0  # manifest objects read for lookups (the tests count them)

    async def refresh(self, first: date, last: date) -> int:
        """Index every manifest object of partitions [first, last] not indexed yet;
        returns how many were added."""
        days = (last - first).days + 1
        if days <= 0:
            return 0
        if days <= _DAYS_LISTED_ONE_BY_ONE:
            prefixes = [partition_prefix(first + timedelta(days=i)) for i in range(days)]
            return await self._ids.refresh(self._store, prefixes=prefixes)

        def wanted(key: str) -> bool:
            day = partition_date(key)
            return day is not None and first <= day <= last

        return await self._ids.refresh(self._store, keep=wanted)

    async def refresh_days(self, days: Iterable[date]) -> int:
        """Index the new manifest objects of these partitions (each listed once)."""
        prefixes = sorted({partition_prefix(day) for day in days})
        return await self._ids.refresh(self._store, prefixes=prefixes) if prefixes else 0

    async def wrote(self, key: str, content: bytes) -> None:
        """A manifest object this process has just written: indexed from its bytes."""
        await self._ids.add(key, content)
        self._cache.pop(key, None)

    async def find(self, provider: str, cdr_id: str) -> ManifestEntry | None:
        """The call line the archive holds for (provider, cdr_id), or None."""
        for key in await self._ids.manifests_of(cdr_id):
            lines = await self._lines(key)
            found = lines.get((provider, cdr_id))
            if found is not None:
                return found
        return None

    async def _lines(self, key: str) -> dict[Identity, ManifestEntry]:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        self.reads += 1
        try:
            content = await read_object(self._store, key)
        except KeyError:
            # Not in this storage (gone, or indexed from another storage the index file
            # also saw): it holds no line here, and is not looked for again.
            await self._ids.forget(key)
            content = b""
        lines: dict[Identity, ManifestEntry] = {}
        for call in parse_manifest(key, content).calls:
            lines.setdefault(call.identity, call)
        self._cache[key] = lines
        while len(self._cache) > _CACHED_MANIFESTS:
            self._cache.popitem(last=False)
        return lines
