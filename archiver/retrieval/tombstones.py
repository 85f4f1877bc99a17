"""Reading tombstones back, each object proven against its chain link.

``verify`` counts a gone recording as DISPOSED only when a tombstone naming
its object key and SHA-256 sits in an object its chain link records (same
SHA-256 and size); ``get`` and ``reconcile`` say "disposed" on the same proof.
A tombstone object edited, removed or added beside the chain is a problem and
its tombstones are not applied: the recordings they name are MISSING again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from archiver.manifest.chain import Link
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import read_object, read_objects
from archiver.manifest.tombstone import Tombstone, parse_tombstone_key, parse_tombstones
from archiver.retrieval.link_table import in_key_order
from archiver.retrieval.problems import Problem, ProblemKind, records_against_link
from archiver.storage.base import ObjectStore
from archiver.storage.layout import TOMBSTONE_PREFIX, link_key

# A recording as a tombstone names it: (object key as in the manifest, SHA-256).
Named = tuple[str, str]


class StoneTable(Mapping[Named, Tombstone]):
    """Tombstones by (object key, SHA-256), in a table of ``db`` (a command's scratch file,
    :mod:`archiver.retrieval.scratch`; in memory when none is given): a retention schedule
    disposes of recordings every day, and a verify must not hold each one in memory."""

    def __init__(self, db: sqlite3.Connection | None = None) -> None:
        self._db = db if db is not None else sqlite3.connect(":memory:")
        self._db.execute(
            "CREATE TABLE tombstones (object_key TEXT NOT NULL, sha256 TEXT NOT NULL, "
            "provider TEXT NOT NULL, cdr_id TEXT NOT NULL, line TEXT NOT NULL, "
            "record_key TEXT NOT NULL, PRIMARY KEY (object_key, sha256)) WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX tombstones_call ON tombstones (provider, cdr_id)")

    def keep(self, stone: Tombstone) -> None:
        """Add ``stone`` unless one of its recording is kept already (the first stands)."""
        self._db.execute(
            "INSERT OR IGNORE INTO tombstones VALUES (?, ?, ?, ?, ?, ?)",
            (
                stone.object_key,
                stone.sha256,
                stone.provider,
                stone.cdr_id,
                stone.to_line(),
                stone.record_key,
            ),
        )

    @staticmethod
    def _stone(line: str, record_key: str) -> Tombstone:
        return Tombstone.from_line(json.loads(line), record_key)

    def __getitem__(self, named: Named) -> Tombstone:
        row = self._db.execute(
            "SELECT line, record_key FROM tombstones WHERE object_key = ? AND sha256 = ?",
            named,
        ).fetchone()
        if row is None:
            raise KeyError(named)
        return self._stone(*row)

    def __iter__(self) -> Iterator[Named]:
        rows = self._db.execute("SELECT object_key, sha256 FROM tombstones ORDER BY 1, 2")
        return ((key, sha) for key, sha in rows)

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM tombstones").fetchone()[0]
        return count

    def of_call(self, provider: str, cdr_id: str) -> Tombstone | None:
        """The first tombstone of the call (provider, cdr id), if any."""
        row = self._db.execute(
            "SELECT line, record_key FROM tombstones WHERE provider = ? AND cdr_id = ? "
            "ORDER BY object_key, sha256 LIMIT 1",
            (provider, cdr_id),
        ).fetchone()
        return None if row is None else self._stone(*row)


@dataclass
class Tombstones:
    """The tombstones found (proven ones only, when a chain was given), and problems."""

    stones: StoneTable = field(default_factory=StoneTable)
    problems: list[Problem] = field(default_factory=list)
    objects: int = 0

    def of(self, call: ManifestEntry) -> Tombstone | None:
        """The tombstone of ``call``'s recording, if any."""
        return self.stones.get((call.object_key, call.sha256))

    def of_identity(self, provider: str, cdr_id: str) -> Tombstone | None:
        """A tombstone of the call (provider, cdr id), if any."""
        return self.stones.of_call(provider, cdr_id)


def _against_link(key: str, content: bytes, link: Link | None) -> Problem | None:
    return records_against_link(key, content, link, "tombstone", "tombstones")


async def read_tombstones(
    store: ObjectStore,
    links: Mapping[str, Link] | None = None,
    *,
    prove: bool = True,
    db: sqlite3.Connection | None = None,
) -> Tombstones:
    """Every tombstone; with ``links`` (verify's checked chain) each object is checked
    against its link; without, each object's own link is read and checked (``prove``),
    or nothing is checked (``prove=False``: dispose's "already done" only). ``db``: where
    the tombstones are kept (a command's scratch file; None: in memory)."""
    found = Tombstones(StoneTable(db))
    keys = [obj.key async for obj in store.list(TOMBSTONE_PREFIX)]
    seen: set[str] = set()
    async for key, content in read_objects(store, keys):
        if content is None:
            continue
        seen.add(key)
        found.objects += 1
        if links is not None or prove:
            link = links.get(key) if links is not None else await _own_link(store, key)
            problem = _against_link(key, content, link)
            if problem is not None:
                found.problems.append(problem)
                continue
        stones, bad = parse_tombstones(key, content)
        for stone in stones:
            found.stones.keep(stone)
        found.problems += [Problem(ProblemKind.BAD_LINE, b, "not a tombstone") for b in bad]
    for key, link in in_key_order({} if links is None else links, TOMBSTONE_PREFIX):
        if key not in seen:
            found.problems.append(
                Problem(
                    ProblemKind.MANIFEST_MISSING,
                    key,
                    f"no such object; {link.lines} tombstone(s) recorded by {link.key} are "
                    "not readable: the recordings they name count as MISSING",
                )
            )
    return found


async def _own_link(store: ObjectStore, key: str) -> Link | None:
    parsed = parse_tombstone_key(key)
    if parsed is None:
        return None
    try:
        link = Link.from_bytes(await read_object(store, link_key(*parsed)))
    except (KeyError, ValueError):
        return None
    return link if link.manifest_key == key else None
