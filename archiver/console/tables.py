"""The console's tables in its index file (:class:`archiver.index_db.IndexDatabase`).

A cache of the storage: manifest lines with their search terms, and audit
records. Deleting the file loses nothing; the next start rebuilds it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS manifests (
    key TEXT PRIMARY KEY,
    lines INTEGER NOT NULL,
    bad_lines INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    cdr_id TEXT NOT NULL,
    sip_call_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    started INTEGER,
    direction TEXT,
    from_key TEXT,
    to_key TEXT,
    extension TEXT,
    agent_cf TEXT,
    agent_name_cf TEXT,
    line TEXT NOT NULL,
    manifest_key TEXT NOT NULL,
    checked_at TEXT,
    problem TEXT,
    billsec INTEGER,
    status TEXT,
    customer TEXT,
    UNIQUE (provider, cdr_id, sha256)
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started);
CREATE INDEX IF NOT EXISTS calls_extension ON calls (extension, started);
CREATE INDEX IF NOT EXISTS calls_direction ON calls (direction, started);
CREATE INDEX IF NOT EXISTS calls_sip ON calls (sip_call_id);
CREATE INDEX IF NOT EXISTS calls_cdr ON calls (cdr_id);
CREATE INDEX IF NOT EXISTS calls_billsec ON calls (billsec, started);
CREATE INDEX IF NOT EXISTS calls_customer ON calls (customer, started);
-- A user's saved searches (the search form's query string, by name).
CREATE TABLE IF NOT EXISTS saved_searches (
    user TEXT NOT NULL,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    PRIMARY KEY (user, name)
);
-- A call's phone numbers (kind 'p': caller and callee) and agent (kind 'a': id
-- and name), one row each, in (value, time) order: the newest page of a number
-- that half the archive shares (the hotline) is a walk down one index, not a sort.
CREATE TABLE IF NOT EXISTS terms (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    started INTEGER,
    call_id INTEGER NOT NULL,
    PRIMARY KEY (kind, value, started, call_id)
) WITHOUT ROWID;
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


def outdated(path: Path) -> bool:
    """Whether the index file at ``path`` was made before the calls table had its review
    columns (duration, outcome, customer): such a cache is rebuilt, not migrated."""
    if not path.exists():
        return False
    conn = sqlite3.connect(path)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    except sqlite3.Error:
        return False  # not ours: opening it says so, one line
    finally:
        conn.close()
    return bool(columns) and "customer" not in columns
