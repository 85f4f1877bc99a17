"""The console's index of the manifests: search in milliseconds at a million calls.

Manifest objects are written once and never changed, so a manifest key
already indexed is done: an update lists ``manifests/`` and reads only the
keys it has not seen. ``rebuild`` starts again from an empty file. A line
listed twice (the same recording in two manifests) is indexed once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from archiver.console import source
from archiver.index_db import IndexDatabase
from archiver.privacy.lines import Opener, is_sealed
from archiver.retrieval.index import normalize_id
from archiver.retrieval.search import phone_key
from archiver.storage.base import ObjectStore, StoredObject

log = logging.getLogger("archiver.console")

# Counting stops here: "10000+" is as useful to a reader as the exact figure, and cheap.
COUNT_CAP = 10_000
# Manifest objects read between two commits of an update.
_COMMIT_EVERY = 50


ORDERS = ("newest", "oldest", "longest", "shortest")
_LAST_HOLD = (
    "(SELECT a.action FROM audit a WHERE a.action IN ('hold-on', 'hold-off') "
    "AND a.result = 'ok' AND json_extract(a.record, '$.target.cdr_id') = c.cdr_id "
    "AND json_extract(a.record, '$.target.provider') = c.provider "
    "ORDER BY a.at DESC, a.key DESC LIMIT 1)"
)
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
        newest, or oldest, matches first, straight off the index); anything
        else from ``calls`` and its own indexes. The other criteria filter the
        rows met. Sorting by talk time walks ``calls_billsec``.
        """
        parts: list[str] = []
        params: list[object] = []
        term: tuple[str, ...] | None = None
        if self.phone:
            term = ("p", phone_key(self.phone), *(_HASHED + h for h in sorted(self.phone_hashes)))
        elif self.agent:
            term = ("a", self.agent.strip().casefold())
        if self.phone and self.agent:
            parts.append("(c.agent_cf = ? OR c.agent_name_cf = ?)")
            params += [self.agent.strip().casefold()] * 2
        for clause, value in (
            ("c.extension = ?", self.extension.strip() if self.extension else None),
            ("c.direction = ?", self.direction),
            ("c.billsec >= ?", self.min_seconds),
            ("c.billsec <= ?", self.max_seconds),
            ("c.status = ?", self.status.strip().casefold() if self.status else None),
            ("c.customer = ?", self.customer.strip() if self.customer else None),
        ):
            if value is not None and value != "":
                parts.append(clause)
                params.append(value)
        if self.ident:
            parts.append("(c.sip_call_id = ? OR c.cdr_id = ?)")
            params += [normalize_id(self.ident)] * 2
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
        marks = ",".join("?" * (len(term) - 1))
        values = "t.value = ?" if len(term) == 2 else f"t.value IN ({marks})"
        where = " AND ".join(["t.kind = ?", values, *parts])
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


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What an update read."""

    manifests: int
    lines: int
    bad_lines: int


def _row_values(call: source.ManifestEntry) -> tuple[object, ...]:
    f = call.fields

    def text(name: str) -> str | None:
        value = f.get(name)
        return None if value in (None, "") else str(value)

    def phone(name: str) -> str | None:
        if is_sealed(f):  # its term is its keyed hash: the index holds no number to erase
            return _HASHED + digest if (digest := text(f"{name}_hash")) else None
        value = text(name)
        return phone_key(value) if value else None

    def folded(name: str) -> str | None:
        value = text(name)
        return value.strip().casefold() if value else None

    started = call.call_started_at
    billsec = f.get("billsec")
    return (
        call.provider,
        call.cdr_id,
        call.sip_call_id,
        call.sha256,
        int(started.timestamp()) if started else None,
        text("direction"),
        phone("from_number"),
        phone("to_number"),
        (text("extension") or "").strip() or None,
        folded("agent"),
        folded("agent_name"),
        json.dumps(dict(f), ensure_ascii=False, separators=(",", ":")),
        call.manifest_key or "",
        billsec if isinstance(billsec, int) and not isinstance(billsec, bool) else None,
        folded("status"),
        (text("customer_id") or "").strip() or None,
    )


_INSERT = (
    "INSERT OR IGNORE INTO calls (provider, cdr_id, sip_call_id, sha256, started, direction, "
    "from_key, to_key, extension, agent_cf, agent_name_cf, line, manifest_key, billsec, "
    "status, customer) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# A call's terms, derived in SQL from its row (one statement per column for all the
# rows a commit adds, not one per call); the primary key drops a number that is
# both the caller and the callee.
_TERMS_FROM = [
    f"INSERT OR IGNORE INTO terms (kind, value, started, call_id) "  # noqa: S608 - constants
    f"SELECT '{kind}', {column}, started, id FROM calls WHERE id > ? AND {column} IS NOT NULL"
    for kind, column in (
        ("p", "from_key"),
        ("p", "to_key"),
        ("a", "agent_cf"),
        ("a", "agent_name_cf"),
    )
]


_COLUMNS = "id, line, manifest_key, checked_at, problem"
# A phone term that is a keyed hash, not digits (no phone_key starts with it).
_HASHED = "#"


def _indexed(row: sqlite3.Row | tuple[object, ...]) -> IndexedCall:
    ident, line, manifest_key, checked_at, problem = row
    return IndexedCall(
        id=int(str(ident)),
        call=source.call_from_json(str(line), str(manifest_key)),
        checked_at=None if checked_at is None else str(checked_at),
        problem=None if problem is None else str(problem),
    )


class CallIndex:
    """Search and look up archived calls from the index; keep it up to date."""

    def __init__(self, db: IndexDatabase, opener: Opener | None = None) -> None:
        self.db = db
        self.opener = opener or Opener(None)  # opens sealed numbers, finds their hashes

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
        """Index every manifest object not indexed yet."""
        listed = [obj async for obj in store.list(source.MANIFEST_PREFIX)]
        known = await self.db.run(
            lambda c: {str(r[0]) for r in c.execute("SELECT key FROM manifests")}
        )
        new: Sequence[StoredObject] = [o for o in listed if o.key not in known]
        manifests = lines = bad = 0
        pending: list[source.Manifest] = []
        async with aclosing(source.read_manifests(store, new, concurrency)) as reader:
            async for manifest in reader:
                pending.append(manifest)
                manifests += 1
                lines += len(manifest.calls)
                bad += len(manifest.bad_lines)
                if len(pending) >= _COMMIT_EVERY:
                    await self.db.run(partial(_store, manifests=pending))
                    pending = []
        if pending:
            await self.db.run(partial(_store, manifests=pending))
        if manifests:
            # debug: get and hold refresh it too, and their stderr is one line.
            log.debug("console index: %d manifest(s), %d line(s) added", manifests, lines)
        return Refreshed(manifests, lines, bad)

    async def search(
        self, query: CallQuery, offset: int, limit: int
    ) -> tuple[list[IndexedCall], int]:
        """A page of matching calls, newest first, and how many match (capped at COUNT_CAP+1)."""
        source_, where, params, order = self.hashed(query).plan()
        # Fixed fragments of plan(); every value is a parameter.
        page = f"SELECT c.id, c.line, c.manifest_key, c.checked_at, c.problem FROM {source_} "  # noqa: S608
        page += f"WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
        if source_.startswith("terms") and "c." not in where:
            # Only the term and its time: counted off the terms index alone, no join.
            source_for_count = "terms t"
        else:
            source_for_count = source_
        count = f"SELECT COUNT(*) FROM (SELECT 1 FROM {source_for_count} WHERE {where} LIMIT ?)"  # noqa: S608

        def run(conn: sqlite3.Connection) -> tuple[list[IndexedCall], int]:
            rows = conn.execute(page, [*params, limit, offset]).fetchall()
            (total,) = conn.execute(count, [*params, COUNT_CAP + 1]).fetchone()
            return [self._opened(_indexed(r)) for r in rows], int(total)

        return await self.db.run(run)

    async def get(self, call_id: int) -> IndexedCall | None:
        """One call by its index id."""
        row = await self.db.run(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM calls WHERE id = ?",  # noqa: S608
                (call_id,),
            ).fetchone()
        )
        return None if row is None else self._opened(_indexed(row))

    async def find(self, provider: str, cdr_id: str) -> int | None:
        """The index id of the call (provider, cdr id), if indexed."""
        row = await self.db.run(
            lambda c: c.execute(
                "SELECT id FROM calls WHERE cdr_id = ? AND provider = ? ORDER BY id LIMIT 1",
                (cdr_id, provider),
            ).fetchone()
        )
        return None if row is None else int(row[0])

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


def _by_ids(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[object, ...]]:
    marks = ",".join("?" * len(ids))
    query = f"SELECT {_COLUMNS} FROM calls WHERE id IN ({marks})"  # noqa: S608 - only "?"s
    return conn.execute(query, ids).fetchall()


def _store(conn: sqlite3.Connection, manifests: Sequence[source.Manifest]) -> None:
    conn.execute("BEGIN")
    try:
        (last_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()
        for manifest in manifests:
            # A recording already indexed from another manifest is ignored (UNIQUE).
            conn.executemany(_INSERT, [_row_values(call) for call in manifest.calls])
            for bad in manifest.bad_lines:
                log.warning(
                    "%s line %d not indexed: %s", bad.manifest_key, bad.line_number, bad.reason
                )
            if any(bad.line_number == 0 for bad in manifest.bad_lines):
                continue  # not read at all (gone meanwhile): looked at again next time
            conn.execute(
                "INSERT OR REPLACE INTO manifests (key, lines, bad_lines) VALUES (?,?,?)",
                (manifest.key, len(manifest.calls), len(manifest.bad_lines)),
            )
        for statement in _TERMS_FROM:
            conn.execute(statement, (last_id,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
