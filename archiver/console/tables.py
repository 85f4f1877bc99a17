"""The console's tables in its index file (:class:`archiver.index_db.IndexDatabase`).

A cache of the storage: manifest lines with their search terms, and audit
records. Deleting the file loses nothing; the next start rebuilds it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The format of the call tables and their packed lines. 1: lines as text; 2 (until
# 2026-12-05): lines DEFLATEd against a typical line, terms as text; 3: lines in
# Zstandard against a trained dictionary (archiver.console.packed), terms by word number;
# 4: provider, direction and status as word numbers too, and an index of direction.
FORMAT = 4
_CALL_TABLES = ("terms", "words", "calls", "manifests", "rollups_read", "building", "calls_format")

CALL_INDEXES = """
CREATE INDEX IF NOT EXISTS calls_started ON calls (started);
CREATE INDEX IF NOT EXISTS calls_extension ON calls (extension, started);
CREATE INDEX IF NOT EXISTS calls_billsec ON calls (billsec, started);
CREATE INDEX IF NOT EXISTS calls_customer ON calls (customer, started);
CREATE INDEX IF NOT EXISTS calls_direction ON calls (direction, started);
CREATE INDEX IF NOT EXISTS calls_sip ON calls (sip_h);
CREATE INDEX IF NOT EXISTS calls_cdr ON calls (cdr_h);
"""
# The secondary indexes of ``calls`` a build from nothing drops and makes once at the
# end (a sort, not a random write per row). Not calls_cdr: a line's duplicates are
# looked up through it while building. Direction's (about 14 bytes a call, which format
# 3's smaller lines make room for): without it a page of one direction is found quickly
# down calls_started, but its count read some 20,000 whole rows (p95 77 ms at a
# million calls under load, 16 ms with it).
CALL_INDEX_NAMES = (
    "calls_started",
    "calls_extension",
    "calls_billsec",
    "calls_customer",
    "calls_direction",
    "calls_sip",
)

SCHEMA = (
    """
-- What the index has read: each manifest object once (its key), and each rollup
-- (archiver.manifest.rollup_read) once, used or set aside (``usable`` 0).
CREATE TABLE IF NOT EXISTS manifests (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    lines INTEGER NOT NULL,
    bad_lines INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rollups_read (
    key TEXT PRIMARY KEY,
    usable INTEGER NOT NULL
) WITHOUT ROWID;
-- One row per archived call: the columns the search form filters on, and the whole
-- line packed (archiver.console.packed). ``sip_h`` and ``cdr_h`` are 32- and 64-bit
-- hashes of its ids (archiver.console.loading): a search by id, and the check that a
-- line listed twice is indexed once, compare the lines they lead to. ``provider``,
-- ``direction`` and ``status`` are numbers of ``words`` (kinds 'v', 'd', 's').
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    manifest INTEGER NOT NULL,
    provider INTEGER NOT NULL,
    sip_h INTEGER NOT NULL,
    cdr_h INTEGER NOT NULL,
    started INTEGER,
    billsec INTEGER,
    direction INTEGER,
    extension TEXT,
    status INTEGER,
    customer TEXT,
    checked_at TEXT,
    problem TEXT,
    line BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_cdr ON calls (cdr_h);
-- A row while a build from nothing is under way (its terms wait in a TEMP table):
-- found by the next update, it means a crash interrupted the build, begun again.
CREATE TABLE IF NOT EXISTS building (id INTEGER PRIMARY KEY CHECK (id = 1));
"""
    + CALL_INDEXES
    + """-- A user's saved searches (the search form's query string, by name).
CREATE TABLE IF NOT EXISTS saved_searches (
    user TEXT NOT NULL,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    PRIMARY KEY (user, name)
);
-- A call's phone numbers (kind 'p': caller and callee) and agent (kind 'a': id
-- and name), one row each, in (word, time) order: the newest page of a number
-- that half the archive shares (the hotline) is a walk down one index, not a sort.
-- A term's kind and value are kept once, in ``words``: a row of ``terms`` holds
-- the word's number (2 or 3 bytes, not 11 to 20).
CREATE TABLE IF NOT EXISTS words (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (kind, value)
);
CREATE TABLE IF NOT EXISTS terms (
    word INTEGER NOT NULL,
    started INTEGER,
    call_id INTEGER NOT NULL,
    PRIMARY KEY (word, started, call_id)
) WITHOUT ROWID;
-- The format of the tables above and of the packed lines (FORMAT): a file of another
-- format has its call tables dropped and indexed again (outdated()).
CREATE TABLE IF NOT EXISTS calls_format (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO calls_format (id, version) VALUES (1, FORMAT_VERSION);
CREATE TABLE IF NOT EXISTS audit (
    key TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, at);
-- Signed-in sessions (archiver.console.sessions): the token only as its SHA-256.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash BLOB PRIMARY KEY,
    user TEXT NOT NULL,
    role INTEGER NOT NULL,
    stamp TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires);
CREATE TABLE IF NOT EXISTS console_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL
);
"""
).replace("FORMAT_VERSION", str(FORMAT))


def outdated(path: Path) -> bool:
    """Whether the index file at ``path`` keeps its calls in another format than
    :data:`FORMAT` (an older console's): such a cache is rebuilt, not migrated."""
    if not path.exists():
        return False
    conn = sqlite3.connect(path)
    try:
        if conn.execute("PRAGMA table_info(calls)").fetchone() is None:
            return False  # no calls yet (a new file, or only get's index)
        try:
            row = conn.execute("SELECT version FROM calls_format").fetchone()
        except sqlite3.OperationalError:
            return True  # made before the format was written down
    except sqlite3.Error:
        return False  # not ours: opening it says so, one line
    finally:
        conn.close()
    return row is None or row[0] != FORMAT


def drop_calls(path: Path) -> None:
    """Drop the tables of the manifest lines of an outdated index file at ``path``; the
    console's own records there (sessions, saved searches, the audit trail's copy) stay."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        drops = " ".join(f"DROP TABLE IF EXISTS {name};" for name in _CALL_TABLES)
        conn.executescript(f"BEGIN; {drops} COMMIT; VACUUM;")
    finally:
        conn.close()
