"""The console's index of the manifests: search in milliseconds at a million calls.

Searching and reading the index; bringing it up to date is
:mod:`archiver.console.updates` (only what it has not read yet), writing rows
:mod:`archiver.console.loading`. A line listed twice (the same recording in
two manifests) is indexed once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from archiver.console import source, updates
from archiver.console.loading import HASHED, id_term, sip_term
from archiver.console.packed import unpack
from archiver.index_db import IndexDatabase
from archiver.privacy.lines import Opener, is_sealed
from archiver.retrieval.index import normalize_id
from archiver.retrieval.search import phone_key
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.console")

# Counting stops here: "10000+" is as useful to a reader as the exact figure, and cheap.
COUNT_CAP = 10_000


ORDERS = ("newest", "oldest", "longest", "shortest")
_LAST_HOLD = (
    "(SELECT a.action FROM audit a WHERE a.action IN ('hold-on', 'hold-off') "
    "AND a.result = 'ok' AND id_term(json_extract(a.record, '$.target.cdr_id')) = c.cdr_h "
    "AND (SELECT w.id FROM words w WHERE w.kind = 'v' "
    "AND w.value = json_extract(a.record, '$.target.provider')) = c.provider "
    "ORDER BY a.at DESC, a.key DESC LIMIT 1)"
)
# A column kept as a word's number (archiver.console.loading), compared with a value.
_WORD = "(SELECT id FROM words WHERE kind = '{}' AND value = ?)"
_HELD, _NOT_HELD = f"{_LAST_HOLD} = 'hold-on'", f"{_LAST_HOLD} IS NOT 'hold-on'"
INTEGRITY = ("intact", "damaged", "unchecked")


@dataclass(frozen=True, slots=True)
class CallQuery:
    """What the search form asks; every given criterion must match."""

    phone: str | None = None
    extension: str | None = None
    agent: str | None = None
    direction: str | None = None
    ident: str | None = None  # a sip_call_id or a cdr id
    since: datetime | None = None
    until: datetime | None = None
    min_seconds: int | None = None  # talk time (billsec), inclusive
    max_seconds: int | None = None
    status: str | None = None  # the call's outcome as the provider wrote it
    customer: str | None = None
    integrity: str | None = None  # intact, damaged or unchecked (the console's last check)
    hold: str | None = None  # "on" or "off": the legal hold as the audit trail last records it
    # Time of day, seconds after local midnight, [day_from, day_to); ``utc_offset``
    # is the console's zone's offset in seconds.
    day_from: int | None = None
    day_to: int | None = None
    utc_offset: int = 0
    order: str = "newest"
    # The keyed hash of ``phone`` (ARCHIVER_PRIVACY__KEYS): its sealed lines' term.
    phone_hashes: frozenset[str] = frozenset()

    def plan(self) -> tuple[str, str, list[object], str]:
        """FROM, WHERE, parameters and ORDER BY of the search (pure).

        A phone number or an agent drives the search from ``terms`` (its
        newest, or oldest, matches first, straight off the index); an id, or
        anything else, from ``calls`` and its own indexes. The other criteria
        filter the rows met. Sorting by talk time walks ``calls_billsec``.
        """
        parts: list[str] = []
        params: list[object] = []
        # A phone number or an agent drives the search from ``terms`` (an id from
        # the calls' id hashes); the other terms asked filter the rows met.
        asked: list[tuple[str, ...]] = []
        if self.phone:
            hashed = (HASHED + h for h in sorted(self.phone_hashes))
            asked.append(("p", phone_key(self.phone), *hashed))
        if self.agent and self.agent.strip():
            asked.append(("a", self.agent.strip().casefold()))
        term = asked[0] if asked and not self.ident else None
        for kind, *values in asked if term is None else asked[1:]:
            parts.append(
                f"EXISTS (SELECT 1 FROM terms x WHERE x.word IN ({_words(values)}) "  # noqa: S608 - "?"s
                "AND x.started = c.started AND x.call_id = c.id)"
            )
            params += [kind, *values]
        if self.ident and normalize_id(self.ident):
            parts.append("(c.sip_h = ? OR c.cdr_h = ?)")
            params += [sip_term(self.ident), id_term(self.ident)]
        if self.agent and not self.agent.strip():
            parts.append("0")  # an agent of blanks names nobody
        status = self.status.strip().casefold() if self.status else None
        for clause, value in (
            ("c.extension = ?", self.extension.strip() if self.extension else None),
            (f"c.direction = {_WORD.format('d')}", self.direction),
            ("c.billsec >= ?", self.min_seconds),
            ("c.billsec <= ?", self.max_seconds),
            (f"c.status = {_WORD.format('s')}", status),
            ("c.customer = ?", self.customer.strip() if self.customer else None),
        ):
            if value is not None and value != "":
                parts.append(clause)
                params.append(value)
        if self.ident and not normalize_id(self.ident):
            parts.append("0")  # an id of blanks names no call
        if self.integrity == "intact":
            parts.append("c.checked_at IS NOT NULL AND c.problem IS NULL")
        elif self.integrity == "damaged":
            parts.append("c.problem IS NOT NULL")
        elif self.integrity == "unchecked":
            parts.append("c.checked_at IS NULL")
        if self.hold in ("on", "off"):
            # The last successful hold-on or hold-off of the call in the audit trail (the
            # console's and `archiver hold`'s): few records, found through audit_action.
            parts.append(_HELD if self.hold == "on" else _NOT_HELD)
        time_column = "t.started" if term else "c.started"
        if self.since is not None:
            parts.append(f"{time_column} >= ?")
            params.append(int(self.since.timestamp()))
        if self.until is not None:
            parts.append(f"{time_column} < ?")
            params.append(int(self.until.timestamp()))
        if self.day_from is not None or self.day_to is not None:
            parts.append("((c.started + ?) % 86400) >= ? AND ((c.started + ?) % 86400) < ?")
            params += [self.utc_offset, self.day_from or 0, self.utc_offset, self.day_to or 86400]
        down = "ASC" if self.order in ("oldest", "shortest") else "DESC"
        if self.order in ("longest", "shortest"):
            order = f"c.billsec {down}, c.started {down}, c.id {down}"
        elif term is None:
            order = f"c.started {down}, c.id {down}"
        else:
            order = f"t.started {down}, t.call_id {down}"
        if term is None:
            return "calls c", " AND ".join(parts) or "1", params, order
        # One word: its number found once (a constant), then a walk down terms' key in
        # time order; several (a number and its keyed hashes): a sort of their rows.
        if len(term) == 2:
            driving = "t.word = (SELECT id FROM words WHERE kind = ? AND value = ?)"
        else:
            driving = f"t.word IN ({_words(term[1:])})"
        where = " AND ".join([driving, *parts])
        return "terms t JOIN calls c ON c.id = t.call_id", where, [*term, *params], order

    def describe(self) -> dict[str, str]:
        """The criteria given, for the audit record."""
        names = (
            "phone",
            "extension",
            "agent",
            "direction",
            "status",
            "customer",
            "integrity",
            "hold",
        )
        out = {k: str(getattr(self, k)) for k in names}
        out["id"] = str(self.ident)
        for name in ("min_seconds", "max_seconds", "day_from", "day_to"):
            out[name] = str(getattr(self, name))
        out = {k: v for k, v in out.items() if v not in ("None", "")}
        if self.phone and self.phone_hashes:
            # With a key place the audit trail names the number by keyed hash only.
            del out["phone"]
            out["phone_hash"] = ",".join(sorted(self.phone_hashes))
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                out[name] = moment.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class IndexedCall:
    """One archived call as the console knows it: its row, its line, its last check."""

    id: int
    call: source.ManifestEntry
    checked_at: str | None
    problem: str | None


# The line (packed) and its manifest object's key, and the console's last check.
_COLUMNS = "c.id, c.line, m.key, c.checked_at, c.problem"
_FROM = "calls c JOIN manifests m ON m.id = c.manifest"


def _indexed(row: sqlite3.Row | tuple[Any, ...]) -> IndexedCall:
    ident, line, manifest_key, checked_at, problem = row
    return IndexedCall(
        id=int(str(ident)),
        call=source.call_from_json(unpack(bytes(line)), str(manifest_key)),
        checked_at=None if checked_at is None else str(checked_at),
        problem=None if problem is None else str(problem),
    )


Refreshed = updates.Refreshed


class CallIndex:
    """Search and look up archived calls from the index; keep it up to date."""

    def __init__(self, db: IndexDatabase, opener: Opener | None = None, workers: int = 0) -> None:
        self.db = db
        self.workers = workers  # processes preparing a build from nothing (0: none)
        self.opener = opener or Opener(None)  # opens sealed numbers, finds their hashes
        # The hold filter compares the audit trail's cdr ids with the calls' hashes.
        db.add_function("id_term", 1, _id_term_or_none)

    def hashed(self, query: CallQuery) -> CallQuery:
        """``query`` with the keyed hash of its phone number (ARCHIVER_PRIVACY__KEYS)."""
        if not query.phone or query.phone_hashes:
            return query
        return replace(query, phone_hashes=self.opener.query_hashes(query.phone))

    def _opened(self, item: IndexedCall) -> IndexedCall:
        if not is_sealed(item.call.fields):
            return item
        return replace(item, call=self.opener.entry(item.call))

    async def refresh(self, store: ObjectStore, concurrency: int = 8) -> Refreshed:
        """Index every manifest object not indexed yet (see :mod:`archiver.console.updates`)."""
        return await updates.update(self.db, store, concurrency, self.workers)

    async def search(
        self, query: CallQuery, offset: int, limit: int
    ) -> tuple[list[IndexedCall], int]:
        """A page of matching calls, newest first, and how many match (capped at COUNT_CAP+1)."""
        query = self.hashed(query)
        source_, where, params, order = query.plan()
        source_ += " JOIN manifests m ON m.id = c.manifest"
        # Fixed fragments of plan(); every value is a parameter.
        page = f"SELECT {_COLUMNS} FROM {source_} "  # noqa: S608
        page += f"WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
        if source_.startswith("terms") and "c." not in where:
            # Only the term and its time: counted off the terms index alone, no join.
            source_for_count = "terms t"
        else:
            source_for_count = source_.removesuffix(" JOIN manifests m ON m.id = c.manifest")
        count = f"SELECT COUNT(*) FROM (SELECT 1 FROM {source_for_count} WHERE {where} LIMIT ?)"  # noqa: S608

        def run(conn: sqlite3.Connection) -> tuple[list[IndexedCall], int]:
            rows = conn.execute(page, [*params, limit, offset]).fetchall()
            (total,) = conn.execute(count, [*params, COUNT_CAP + 1]).fetchone()
            return [self._opened(_indexed(r)) for r in rows], int(total)

        found, total = await self.db.run(run)
        if query.ident:
            # Ids are indexed as 64-bit hashes: a line whose ids only share the hash is
            # not the call asked for.
            wanted = normalize_id(query.ident)
            kept = [i for i in found if wanted in _ids(i.call)]
            total -= len(found) - len(kept)
            found = kept
        return found, total

    async def get(self, call_id: int) -> IndexedCall | None:
        """One call by its index id."""
        row = await self.db.run(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = ?",  # noqa: S608
                (call_id,),
            ).fetchone()
        )
        return None if row is None else self._opened(_indexed(row))

    async def find(self, provider: str, cdr_id: str) -> int | None:
        """The index id of the call (provider, cdr id), if indexed."""
        rows = await self.db.run(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.cdr_h = ? "  # noqa: S608
                f"AND c.provider = {_WORD.format('v')} "
                "ORDER BY c.id",
                (id_term(cdr_id), provider),
            ).fetchall()
        )
        for item in map(_indexed, rows):
            if item.call.cdr_id == cdr_id:  # not only the same hash
                return item.id
        return None

    async def many(self, ids: Sequence[int]) -> list[IndexedCall]:
        """Calls by id, in the order given (unknown ids left out)."""
        found: dict[int, IndexedCall] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = await self.db.run(partial(_by_ids, ids=chunk))
            found |= {item.id: self._opened(item) for item in map(_indexed, rows)}
        return [found[i] for i in ids if i in found]

    async def record_check(self, call_id: int, problem: str | None) -> None:
        """Remember the outcome of a check of the call's recording against its line."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        await self.db.run(
            lambda c: c.execute(
                "UPDATE calls SET checked_at = ?, problem = ? WHERE id = ?",
                (now, problem, call_id),
            )
        )

    async def count(self) -> int:
        """Calls in the index."""
        return int(
            await self.db.run(lambda c: c.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        )


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _words(values: Sequence[str]) -> str:
    """The numbers of the words of a kind and ``values`` (a subquery: a "?" each)."""
    return f"SELECT id FROM words WHERE kind = ? AND value IN ({_marks(values)})"  # noqa: S608


def _id_term_or_none(value: object) -> int | None:
    return id_term(value) if isinstance(value, str) else None


def _ids(call: source.ManifestEntry) -> set[str]:
    return {normalize_id(call.sip_call_id), normalize_id(call.cdr_id)}


def _by_ids(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[object, ...]]:
    marks = ",".join("?" * len(ids))
    query = f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id IN ({marks})"  # noqa: S608 - only "?"s
    return conn.execute(query, ids).fetchall()
