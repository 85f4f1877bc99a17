"""The SQLite state's schema and its migrations.

Step N (1-based) takes a database at schema version N-1 to version N. Steps are
only ever appended: a released step is never edited, because databases in the
field have already run it. Each step runs in its own ``BEGIN IMMEDIATE``
transaction together with the version bump, so a crash mid-upgrade leaves the
database at the previous version, never half-migrated.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from archiver.errors import ConfigError

Migration = Sequence[str]  # the SQL statements of one step, run in order

# Version 1: the first release.
_V1: Migration = (
    """
    CREATE TABLE manifest_batches (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        manifest_date TEXT NOT NULL,
        content BLOB,
        line_count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        written_at TEXT,
        -- Content may only be dropped once the object is known to be written.
        CHECK (content IS NOT NULL OR written_at IS NOT NULL)
    )
    """,
    """
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        cdr_id TEXT NOT NULL,
        sip_call_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        record_json TEXT NOT NULL,
        recording_url TEXT,
        state TEXT NOT NULL CHECK (state IN (
            'pending', 'transferring', 'archived', 'no_recording', 'waiting_ready', 'failed'
        )),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        reason TEXT,
        first_seen_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        object_key TEXT,
        sha256 TEXT,
        size INTEGER,
        content_type TEXT,
        archived_at TEXT,
        manifest_line TEXT,
        manifest_date TEXT,
        manifest_batch_id INTEGER REFERENCES manifest_batches (id),
        -- cdr_id first: the same index serves the (provider, cdr_id) upsert and
        -- a lookup by cdr_id alone (find_job), so no second index on cdr_id.
        UNIQUE (cdr_id, provider)
    )
    """,
    # Partial: only the due-able states, ordered by due time (rowid appended), so
    # claim_due and next_due_at read the head of the index and stop at LIMIT
    # instead of sorting every due job; it stays small once the backlog drains.
    """
    CREATE INDEX calls_due ON calls (next_attempt_at)
        WHERE state IN ('pending', 'waiting_ready')
    """,
    "CREATE INDEX calls_state ON calls (state)",
    "CREATE INDEX calls_sip_call_id ON calls (sip_call_id)",
    """
    CREATE INDEX calls_unbatched ON calls (manifest_date)
        WHERE state = 'archived' AND manifest_batch_id IS NULL
    """,
    "CREATE INDEX calls_failed ON calls (updated_at) WHERE state = 'failed'",
    """
    CREATE TABLE windows (
        provider TEXT NOT NULL,
        start_at TEXT NOT NULL,
        end_at TEXT NOT NULL,
        done_at TEXT NOT NULL,
        PRIMARY KEY (provider, start_at, end_at)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE checkpoints (
        provider TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
)

# Version 2: a failed job keeps its kind (archiver.failures.FailureKind) as a
# value. Failures recorded before it get theirs from their reason's words, once,
# here; nothing reads a kind from a message after this step.
_V2: Migration = (
    "ALTER TABLE calls ADD COLUMN failure_kind TEXT",
    """
    UPDATE calls SET failure_kind = CASE
        WHEN reason LIKE '%never became available%' THEN 'never_available'
        WHEN reason LIKE '%private or special address%' OR reason LIKE '%scheme%'
            THEN 'host_not_allowed'
        WHEN reason LIKE '%already exists%' THEN 'object_conflict'
        WHEN reason LIKE '%redirects%' THEN 'too_many_redirects'
        WHEN reason LIKE 'no recording URL%' THEN 'no_url'
        WHEN reason LIKE '%HTTP %' THEN 'http_error'
        ELSE 'other' END
    WHERE state = 'failed'
    """,
)

# Version 3: no secret kept at rest. A CDR's raw payload is no longer stored, nor
# the recording URL inside the stored record; the URL column (a signed link
# may carry a credential in its query) is cleared once a job is archived or failed.
_V3: Migration = (
    "UPDATE calls SET record_json = json_remove(record_json, '$.raw', '$.recording_url')",
    "UPDATE calls SET recording_url = NULL WHERE state IN ('archived', 'failed')",
)

# Version 4: the manifest chain. Each batch keeps its link object's bytes, fixed
# with the batch before either is written; ``chain`` holds, per writer id, its
# last link; ``writer`` this store's own writer id, drawn once.
_V4: Migration = (
    "ALTER TABLE manifest_batches ADD COLUMN link BLOB",
    """
    CREATE TABLE chain (
        writer TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_link_sha256 TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE writer (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        writer_id TEXT NOT NULL
    )
    """,
    "INSERT INTO writer (id, writer_id) VALUES (1, 'w' || lower(hex(randomblob(8))))",
)

# Version 5: several processes on one state. A claimed job records its holder
# and until when (NULL for a job left transferring by an older archiver: free
# to take again).
_V5: Migration = (
    "ALTER TABLE calls ADD COLUMN lease_owner TEXT",
    "ALTER TABLE calls ADD COLUMN lease_until TEXT",
)

# Version 6: named leases ("roles"): the one process that polls (``leader``), the
# one that writes the manifest chain, a backfill window being listed. A role is
# held by ``owner`` until ``until``; an expired row is free to take.
_V6: Migration = (
    """
    CREATE TABLE roles (
        role TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until TEXT NOT NULL
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
LATEST_VERSION = len(MIGRATIONS)

_CREATE_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    )
"""


async def schema_version(db: aiosqlite.Connection) -> int:
    """The database's schema version: 0 for a new (empty) database."""
    exists = await db.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    if not list(exists):
        return 0
    rows = list(await db.execute_fetchall("SELECT version FROM schema_version WHERE id = 1"))
    return int(rows[0][0]) if rows else 0


async def migrate(
    db: aiosqlite.Connection, migrations: Sequence[Migration] = MIGRATIONS, *, name: str = ""
) -> int:
    """Bring the database up to ``len(migrations)``; return the version it is at.

    ``db`` must be in autocommit mode (``isolation_level=None``): each step opens
    its own transaction. Raises ConfigError if the database was written by a
    newer archiver (a version this code does not know): running old code on it
    could silently corrupt data it does not understand.
    """
    latest = len(migrations)
    while True:
        # The version is re-read inside each write transaction so that two
        # processes opening the same new file cannot both run a step.
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(_CREATE_VERSION_TABLE)
            version = await schema_version(db)
            if version < latest:
                for statement in migrations[version]:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (id, version) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                    (version + 1,),
                )
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")
        if version > latest:
            raise ConfigError(
                f"state database {name or '(unnamed)'} has schema version {version}, "
                f"newer than this archiver knows ({latest}): upgrade the archiver"
            )
        if version == latest:
            return version
