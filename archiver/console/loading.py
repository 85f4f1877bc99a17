"""Writing manifest objects into the console's index: rows, packed lines, search terms.

:func:`prepare` is pure (bytes in, rows out) so that it can run in another
process; :func:`store` writes prepared manifests in one transaction. A
manifest object's rows and its key are committed together: a crash leaves it
indexed whole or not at all, and the next update reads it again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from archiver.console.packed import pack, unpack
from archiver.console.tables import CALL_INDEX_NAMES, CALL_INDEXES
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import BadLine, parse_manifest
from archiver.privacy.lines import is_sealed
from archiver.retrieval.index import normalize_id
from archiver.retrieval.local_index import id_hash
from archiver.retrieval.search import phone_key

log = logging.getLogger("archiver.console")

_INSERT = (
    "INSERT INTO calls (manifest, provider, sip_h, cdr_h, started, billsec, direction, "
    "extension, status, customer, line) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
# A phone term that is a keyed hash, not digits (no phone_key starts with it).
HASHED = "#"
_WORD = "INSERT OR IGNORE INTO words (kind, value) VALUES (?,?)"
_TERM = (
    "INSERT OR IGNORE INTO terms (word, started, call_id) "
    "VALUES ((SELECT id FROM words WHERE kind = ? AND value = ?), ?, ?)"
)
_TERM_LOAD = "INSERT INTO temp.terms_load (kind, value, started, call_id) VALUES (?,?,?,?)"


def id_term(ident: str) -> int:
    """The ``cdr_h`` of an id: the 64-bit hash of it normalized (pure).

    A hash instead of the id's text keeps the index small; whatever finds a call
    by it compares the line's own ids, so two ids sharing a hash never give a
    wrong call.
    """
    return id_hash(normalize_id(ident))


def sip_term(ident: str) -> int:
    """The ``sip_h`` of an id: 32 bits of :func:`id_term` (pure). Stored in 4 bytes, not
    8: a search by id compares the lines it finds (one in about 4 billion shares it)."""
    return id_term(ident) >> 32


@dataclass(frozen=True, slots=True)
class Prepared:
    """One manifest object ready to store: a row and its terms per readable line."""

    key: str
    rows: list[tuple[object, ...]]
    terms: list[list[tuple[str, str]]]
    # (cdr id, recording sha256) of each row: what makes a line a copy of another
    identities: list[tuple[str, str]]
    bad_lines: list[BadLine]
    read: bool = True  # False: listed but gone when read (looked at again next time)

    @property
    def lines(self) -> int:
        """Readable lines."""
        return len(self.rows)


def call_row(
    call: ManifestEntry, raw: bytes | None = None
) -> tuple[tuple[object, ...], list[tuple[str, str]]]:
    """The ``calls`` row of a line (without its manifest's id) and its search terms (pure);
    ``raw``: the line's bytes as the manifest holds them (kept as they are)."""
    f = call.fields

    def text(name: str) -> str | None:
        value = f.get(name)
        return None if value in (None, "") else str(value)

    def folded(name: str) -> str | None:
        value = text(name)
        return (value.strip().casefold() or None) if value else None

    started = call.call_started_at
    billsec = f.get("billsec")
    terms: list[tuple[str, str]] = []
    for name in ("from_number", "to_number"):
        if is_sealed(f):
            # A sealed line's term is its keyed hash: the index holds no number to erase.
            digest = text(f"{name}_hash")
            number = HASHED + digest if digest else ""
        else:
            number = phone_key(text(name) or "")
        if number:
            terms.append(("p", number))
    for name in ("agent", "agent_name"):
        agent = folded(name)
        if agent:
            terms.append(("a", agent))
    row = (
        call.provider,
        sip_term(call.sip_call_id),
        id_term(call.cdr_id),
        int(started.timestamp()) if started else None,
        billsec if isinstance(billsec, int) and not isinstance(billsec, bool) else None,
        text("direction"),
        (text("extension") or "").strip() or None,
        folded("status"),
        (text("customer_id") or "").strip() or None,
        pack(raw if raw is not None else json.dumps(dict(f), ensure_ascii=False)),
    )
    return row, terms


def prepare(key: str, content: bytes | None) -> Prepared:
    """A manifest object's rows from its bytes (pure; None: the object is gone)."""
    if content is None:
        gone = [BadLine(key, 0, "the manifest object disappeared")]
        return Prepared(key, [], [], [], gone, read=False)
    manifest = parse_manifest(key, content)
    raw_lines = content.split(b"\n")
    rows: list[tuple[object, ...]] = []
    terms: list[list[tuple[str, str]]] = []
    for call, number in zip(manifest.calls, manifest.numbers, strict=True):
        row, its_terms = call_row(call, raw_lines[number - 1].strip())
        rows.append(row)
        terms.append(its_terms)
    identities = [(call.cdr_id, call.sha256) for call in manifest.calls]
    return Prepared(key, rows, terms, identities, manifest.bad_lines)


# Columns of a row kept as the number of a word (kind, value) of ``words``: a few
# values repeated on every row (1 byte instead of 6 to 9, in the row and its index).
# Positions in a row of call_row, and the word's kind.
_WORD_COLUMNS = ((0, "v"), (5, "d"), (7, "s"))


class _Words:
    """Numbers of words, asked of ``words`` once per transaction (few distinct values)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.known: dict[tuple[str, str], int] = {}

    def number(self, kind: str, value: object) -> int | None:
        if value is None:
            return None
        key = (kind, str(value))
        found = self.known.get(key)
        if found is None:
            self.conn.execute(_WORD, key)
            (found,) = self.conn.execute(
                "SELECT id FROM words WHERE kind = ? AND value = ?", key
            ).fetchone()
            self.known[key] = found = int(found)
        return found

    def row(self, row: tuple[object, ...]) -> tuple[object, ...]:
        """``row`` with its word columns as numbers."""
        out = list(row)
        for position, kind in _WORD_COLUMNS:
            out[position] = self.number(kind, row[position])
        return tuple(out)


def _indexed_already(conn: sqlite3.Connection, row: tuple[Any, ...], cdr_id: str, sha: str) -> bool:
    """Whether the call of ``row`` (its words numbered; same provider, cdr id and
    recording) is indexed."""
    provider, cdr_h = row[0], row[2]
    for (line,) in conn.execute(
        "SELECT line FROM calls WHERE cdr_h = ? AND provider = ?", (cdr_h, provider)
    ):
        fields = json.loads(unpack(line))
        if fields.get("cdr_id") == cdr_id and str(fields.get("sha256")).lower() == sha:
            return True
    return False


def store(conn: sqlite3.Connection, batch: Sequence[Prepared], *, bulk: bool = False) -> None:
    """Write prepared manifest objects in one transaction; a key already indexed is
    skipped, and so is a line whose recording is indexed from another object. ``bulk``
    (a build from nothing): the terms wait in ``terms_load`` for :func:`finish_load`."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        words = _Words(conn)
        for manifest in batch:
            for bad in manifest.bad_lines:
                log.warning(
                    "%s line %d not indexed: %s", bad.manifest_key, bad.line_number, bad.reason
                )
            if not manifest.read:
                continue
            cursor = conn.execute(
                "INSERT OR IGNORE INTO manifests (key, lines, bad_lines) VALUES (?,?,?)",
                (manifest.key, manifest.lines, len(manifest.bad_lines)),
            )
            if cursor.rowcount == 0:
                continue  # indexed meanwhile (another update, or a rollup's copy)
            manifest_id = cursor.lastrowid
            terms: list[tuple[str, str, object, int]] = []
            for prepared, its_terms, (cdr_id, sha) in zip(
                manifest.rows, manifest.terms, manifest.identities, strict=True
            ):
                row = words.row(prepared)
                if _indexed_already(conn, row, cdr_id, sha):
                    continue
                call_id = conn.execute(_INSERT, (manifest_id, *row)).lastrowid
                if call_id is None:  # never for a rowid table; typed as optional
                    continue
                started = row[3]
                terms += [(kind, value, started, call_id) for kind, value in its_terms]
            if not bulk:
                conn.executemany(_WORD, [term[:2] for term in terms])
            conn.executemany(_TERM_LOAD if bulk else _TERM, terms)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def known(conn: sqlite3.Connection, keys: Sequence[str], table: str = "manifests") -> set[str]:
    """Which of ``keys`` the index has read (asked in chunks: SQLite bounds a statement)."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT key FROM {table} WHERE key IN ({marks})"  # noqa: S608 - a constant, "?"s
        found.update(str(key) for (key,) in conn.execute(query, chunk))
    return found


def rollup_read(conn: sqlite3.Connection, key: str, usable: bool) -> None:
    """Remember a rollup read (used, or set aside when it did not check out)."""
    conn.execute(
        "INSERT OR REPLACE INTO rollups_read (key, usable) VALUES (?, ?)", (key, int(usable))
    )


def start_bulk(conn: sqlite3.Connection) -> bool:
    """Before a build from nothing: drop the calls' secondary indexes (made once at the
    end by :func:`finish_load`, a sort instead of a random write per row), and gather
    the terms in a TEMP table (its own file: the index file does not keep its pages).
    False (nothing changed) when the index already holds calls. A build a crash
    interrupted (its terms lost with the TEMP table) is begun again."""
    if conn.execute("SELECT 1 FROM building").fetchone() is not None:
        log.warning("the console index was being built when stopped: building it again")
        conn.executescript(
            "BEGIN IMMEDIATE; DELETE FROM terms; DELETE FROM words; DELETE FROM calls; "
            "DELETE FROM manifests; DELETE FROM rollups_read; COMMIT;"
        )
    if conn.execute("SELECT 1 FROM calls LIMIT 1").fetchone() is not None:
        return False
    for name in CALL_INDEX_NAMES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS terms_load "
        "(kind TEXT, value TEXT, started INTEGER, call_id INTEGER)"
    )
    conn.execute("INSERT OR IGNORE INTO building (id) VALUES (1)")
    return True


def finish_load(conn: sqlite3.Connection) -> None:
    """After a build from nothing: make the calls' secondary indexes (a sort each), number
    the gathered terms' words and move the terms into ``terms`` in key order (pages
    written full, once)."""
    conn.executescript(CALL_INDEXES)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR IGNORE INTO words (kind, value) "
            "SELECT DISTINCT kind, value FROM temp.terms_load ORDER BY kind, value"
        )
        conn.execute(
            "INSERT OR IGNORE INTO terms (word, started, call_id) "
            "SELECT w.id, l.started, l.call_id FROM temp.terms_load l "
            "JOIN words w ON w.kind = l.kind AND w.value = l.value ORDER BY 1, 2, 3"
        )
        conn.execute("DELETE FROM building")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("DROP TABLE temp.terms_load")
