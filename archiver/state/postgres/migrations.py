"""The PostgreSQL state's schema and its versioned migrations.

As in the SQLite state (archiver/state/sqlite/migrations.py): step N takes a database
at schema version N-1 to N, steps are only ever appended, and each step runs in
one transaction with its version bump. Replicas starting together take a
session advisory lock first, so only one runs the steps and the others find the
schema current. A database at a version newer than this code knows is refused.

The schema mirrors the SQLite one at its version 6, with native types
(timestamptz, bytea, bigint identity) instead of text encodings.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from archiver.errors import ConfigError

Migration = Sequence[str]

# An arbitrary constant: the advisory lock key of "migrating the archiver's
# state" (pg_advisory_lock keys are per database).
MIGRATION_LOCK = 0x61726368_69766572 & 0x7FFF_FFFF_FFFF_FFFF  # "archiver"

# Version 1: calls and their jobs (with leases), windows, checkpoints, the
# manifest batches and chain, this database's writer id, and named leases.
_V1: Migration = (
    """
    CREATE TABLE manifest_batches (
        id bigint PRIMARY KEY,
        key text NOT NULL UNIQUE,
        manifest_date text NOT NULL,
        content bytea,
        line_count integer NOT NULL,
        created_at timestamptz NOT NULL,
        written_at timestamptz,
        link bytea,
        -- Content may only be dropped once the object is known to be written.
        CHECK (content IS NOT NULL OR written_at IS NOT NULL)
    )
    """,
    """
    CREATE TABLE calls (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        provider text NOT NULL,
        cdr_id text NOT NULL,
        sip_call_id text NOT NULL,
        started_at timestamptz NOT NULL,
        record_json text NOT NULL,
        recording_url text,
        state text NOT NULL CHECK (state IN (
            'pending', 'transferring', 'archived', 'no_recording', 'waiting_ready', 'failed'
        )),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        reason text,
        failure_kind text,
        first_seen_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        object_key text,
        sha256 text,
        size bigint,
        content_type text,
        archived_at timestamptz,
        manifest_line text,
        manifest_date text,
        manifest_batch_id bigint REFERENCES manifest_batches (id),
        lease_owner text,
        lease_until timestamptz,
        UNIQUE (cdr_id, provider)
    )
    """,
    # Partial indexes as in SQLite: the due jobs in claim order, the jobs in
    # flight, the archived jobs not yet batched, the failures by recency.
    """
    CREATE INDEX calls_due ON calls (next_attempt_at, id)
        WHERE state IN ('pending', 'waiting_ready')
    """,
    "CREATE INDEX calls_state ON calls (state)",
    "CREATE INDEX calls_in_flight ON calls (lease_owner) WHERE state = 'transferring'",
    "CREATE INDEX calls_sip_call_id ON calls (sip_call_id)",
    """
    CREATE INDEX calls_unbatched ON calls (manifest_date, id)
        WHERE state = 'archived' AND manifest_batch_id IS NULL
    """,
    "CREATE INDEX calls_failed ON calls (updated_at) WHERE state = 'failed'",
    """
    CREATE TABLE windows (
        provider text NOT NULL,
        start_at timestamptz NOT NULL,
        end_at timestamptz NOT NULL,
        done_at timestamptz NOT NULL,
        PRIMARY KEY (provider, start_at, end_at)
    )
    """,
    "CREATE TABLE checkpoints (provider text PRIMARY KEY, value timestamptz NOT NULL)",
    """
    CREATE TABLE chain (
        writer text PRIMARY KEY,
        last_seq bigint NOT NULL,
        last_link_sha256 text NOT NULL
    )
    """,
    """
    CREATE TABLE writer (
        id integer PRIMARY KEY CHECK (id = 1),
        writer_id text NOT NULL
    )
    """,
    # Drawn once per database: every replica on it writes as this one writer.
    """
    INSERT INTO writer (id, writer_id)
        VALUES (1, 'w' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16))
    """,
    "CREATE TABLE roles (role text PRIMARY KEY, owner text NOT NULL, until timestamptz NOT NULL)",
)

MIGRATIONS: tuple[Migration, ...] = (_V1,)
LATEST_VERSION = len(MIGRATIONS)

_CREATE_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        id integer PRIMARY KEY CHECK (id = 1),
        version integer NOT NULL
    )
"""


async def schema_version(conn: asyncpg.Connection) -> int:
    """The database's schema version: 0 for a new (empty) database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT version FROM schema_version WHERE id = 1")
    return int(version or 0)


def newer_schema(name: str, version: int, latest: int = LATEST_VERSION) -> ConfigError:
    """The refusal of a database a newer archiver wrote."""
    return ConfigError(
        f"state database {name} has schema version {version}, "
        f"newer than this archiver knows ({latest}): upgrade the archiver"
    )


async def migrate(
    conn: asyncpg.Connection, migrations: Sequence[Migration] = MIGRATIONS, *, name: str = ""
) -> int:
    """Bring the database up to ``len(migrations)`` under the migration lock; its version.

    ConfigError if a newer archiver wrote it: old code could corrupt what it
    does not understand.
    """
    latest = len(migrations)
    # Session-level: held across the steps' transactions, released however we leave.
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        while True:
            async with conn.transaction():
                await conn.execute(_CREATE_VERSION_TABLE)
                version = await schema_version(conn)
                if version < latest:
                    for statement in migrations[version]:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_version (id, version) VALUES (1, $1)"
                        " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                        version + 1,
                    )
            if version > latest:
                raise newer_schema(name or "(unnamed)", version, latest)
            if version == latest:
                return version
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
